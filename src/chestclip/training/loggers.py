"""Experiment loggers for pre-training, chosen in the config (``pretrain.loggers``), all of them
Lightning's, all writing inside the run unless their own environment variables say otherwise:

- ``csv``: ``RUN/logs/version_N/metrics.csv`` and ``hparams.yaml``;
- ``tensorboard``: ``RUN/tensorboard/version_N/events.out.tfevents.*`` (``tensorboard --logdir``);
- ``wandb``: Weights & Biases, offline unless ``WANDB_MODE=online``: ``RUN/wandb/offline-run-*``
  (``wandb sync`` uploads it later);
- ``mlflow``: MLflow's SQLite store ``RUN/mlflow.db`` (artifacts in ``RUN/mlartifacts``), or the
  server in ``MLFLOW_TRACKING_URI``; MLflow has put its plain-file store in maintenance mode.

Each receives the whole resolved run config as hyperparameters (``section/key``), every metric
Lightning logs, and at the end of training the final metrics (``final/*``: the best validation
loss, that of the saved model, and the last epoch's metrics).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger

from chestclip.utils.extras import require_extra

LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")
EXPERIMENT = "chestclip"


def make_loggers(names: Sequence[str], run: Path) -> list[Logger]:
    """The loggers ``names`` for the run directory ``run`` (its name names the logged run)."""
    loggers: list[Logger] = []
    for name in names:
        if name not in LOGGERS:
            raise ValueError(f"unknown logger {name!r}: expected some of {list(LOGGERS)}")
        if name != "csv":
            require_extra(name, f"pretrain.loggers: {name}")
        loggers.append(_LOGGER_FACTORIES[name](run.resolve()))
    return loggers


def _csv(run: Path) -> Logger:
    return CSVLogger(run, name="logs")


def _tensorboard(run: Path) -> Logger:
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(run, name="tensorboard", default_hp_metric=False)


def _wandb(run: Path) -> Logger:
    mode = os.environ.get("WANDB_MODE", "offline")
    return WandbLogger(project=EXPERIMENT, name=run.name, save_dir=str(run), mode=mode)


def _mlflow(run: Path) -> Logger:
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(
        experiment_name=EXPERIMENT,
        run_name=run.name,
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{run / 'mlflow.db'}",
        artifact_location=(run / "mlartifacts").as_uri(),
    )


_LOGGER_FACTORIES = {"csv": _csv, "tensorboard": _tensorboard, "wandb": _wandb, "mlflow": _mlflow}


def flat_hyperparameters(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"pretrain": {"lr": 1e-5}}`` → ``{"pretrain/lr": 1e-5}``; lists become strings."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_hyperparameters(value, f"{name}/"))
        else:
            flat[name] = str(value) if isinstance(value, list | tuple) or value is None else value
    return flat


class FinalMetrics(L.Callback):
    """At the end of training, logs ``final/*`` to every logger: the best validation loss (the
    saved model's) and each metric of the last epoch."""

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        final = {
            f"final/{key.replace('/', '_')}": float(value)
            for key, value in trainer.callback_metrics.items()
            if value.numel() == 1
        }
        best = trainer.checkpoint_callback
        if best is not None and best.best_model_score is not None:
            final["final/val_loss_best"] = float(best.best_model_score)
        for logger in trainer.loggers:
            logger.log_metrics(final, step=trainer.global_step)


def finish_loggers(loggers: Sequence[Logger]) -> None:
    """Close what Lightning leaves open: the W&B run (the next WandbLogger in this process, a
    sweep's next trial, would otherwise log into it)."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()  # a no-op when no run was started
