"""``chestclip pretrain``: contrastive CLIP training on a prepared dataset.

Writes into RUN: ``config.yaml`` (resolved), ``env.json``, ``tokenizer/`` (trained for presets),
``checkpoints/`` (best, last, history; ``--resume`` continues from ``last.ckpt``), ``clip/`` (the
best model, safetensors, with ``metrics.csv`` and the weights' content hash), ``logs/``
(Lightning's CSV log; the other ``pretrain.loggers`` write beside it, see
``chestclip.training.loggers``) and ``plots/clip_loss.png`` (paths: ``RunLayout``). Under DDP
every rank trains and rank 0 alone writes (``chestclip.utils.distributed``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from chestclip.config import RunConfig, save_run_config
from chestclip.data import PreparedData
from chestclip.errors import ChestClipError
from chestclip.evaluation.plots import plot_clip_history
from chestclip.models import (
    ChestCLIPConfig,
    ClipLoss,
    build_clip,
    build_tokenizer,
    load_tokenizer,
    save_clip,
)
from chestclip.training.augment import make_augment
from chestclip.training.clip_module import ClipModule
from chestclip.training.datamodule import PairDataModule
from chestclip.training.loggers import (
    FinalMetrics,
    finish_loggers,
    flat_hyperparameters,
    make_loggers,
)
from chestclip.training.trainer import build_trainer, check_checkpoint
from chestclip.utils.distributed import is_leader, leader_barrier, spawning_children
from chestclip.utils.io import atomic_directory, atomic_path, atomic_write_json
from chestclip.utils.provenance import environment
from chestclip.utils.run_layout import RunLayout

HISTORY_COLUMNS = {
    "train/loss_epoch": "train_loss",
    "val/loss": "val_loss",
    "val/recall@1": "val_recall@1",
    "val/recall@5": "val_recall@5",
    "val/chance@5": "val_chance@5",
    "train/logit_scale": "logit_scale",
}
# PretrainConfig fields that ClipModule takes as keyword arguments
OPTIMISATION = {
    "optimizer", "lr", "weight_decay", "scheduler", "plateau_factor", "plateau_patience",
    "step_size", "step_gamma", "warmup_epochs", "epochs",
}  # fmt: skip


class EpochHistory(L.Callback):
    """One row per epoch, kept inside checkpoints (a resumed run continues it), written to CSV."""

    def __init__(self, path: Path):
        self.path, self.rows = path, []

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        row: dict[str, Any] = {"epoch": trainer.current_epoch}
        row.update(
            {name: float(metrics[key]) for key, name in HISTORY_COLUMNS.items() if key in metrics}
        )
        row["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        if trainer.is_global_zero:
            with atomic_path(self.path) as tmp:
                self.frame().to_csv(tmp, index=False)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict["rows"])


@dataclass(frozen=True)
class PretrainResult:
    run: Path
    clip_dir: Path
    history: pd.DataFrame
    best_checkpoint: Path


def training_data(data: PreparedData) -> dict[str, Any]:
    """The preparation a saved model expects of new images and texts (resize, cleaning)."""
    prepared = data.summary["config"]
    keys = ("image_size", "resize", "text_fields", "clean", "views")
    return {
        "prepared": str(data.root.resolve()),
        "source": data.summary.get("source"),
        **{k: prepared[k] for k in keys},
    }


def read_training_data(run: str | Path) -> dict[str, Any]:
    """``training_data`` as saved with a run's model (how new inputs must be prepared)."""
    path = RunLayout(run).training_data
    if not path.is_file():
        raise ChestClipError(f"{path}: missing; was this model trained by `chestclip pretrain`?")
    return json.loads(path.read_text())


def clip_config(config: RunConfig, image_size: int) -> ChestCLIPConfig:
    fields = config.model.model_dump(exclude={"tokenizer_vocab_size"})
    return ChestCLIPConfig(**fields, image_size=image_size)


def prepare_tokenizer(config: RunConfig, data: PreparedData, directory: Path, resume: bool):
    """The text encoder's tokenizer; for presets a WordPiece trained on the TRAINING texts only,
    saved with the checkpoints so a resumed run uses the same vocabulary."""
    if resume and directory.is_dir():
        return load_tokenizer(directory)
    train_texts = data.studies.loc[data.studies["split"] == "train", "text"].tolist()
    tokenizer = build_tokenizer(
        config.model.text_encoder,
        train_texts,
        config.model.tokenizer_vocab_size,
        config.model.init_from,
    )
    with atomic_directory(directory) as tmp:
        tokenizer.save_pretrained(tmp)
    return tokenizer


def pretrain(
    data_dir: str | Path,
    run_dir: str | Path,
    config: RunConfig,
    resume: bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> PretrainResult:
    """Train a ChestCLIP on the train split; the epoch with the best validation loss → RUN/clip.
    ``callbacks`` join this process's trainer only, not those of spawned DDP ranks."""
    layout = RunLayout(run_dir)
    run, checkpoints, last = layout.root, layout.checkpoints, layout.last_checkpoint
    loggers = make_loggers(config.pretrain.loggers, run)  # a missing extra fails before any work
    if last.exists() and not resume:
        raise ChestClipError(
            f"{run}: holds checkpoints of an earlier run; pass --resume to continue it"
        )
    settings = config.pretrain
    data = PreparedData(data_dir, shards_url=settings.shards_url)
    if not data.has_images:
        raise ChestClipError(f"{data.root}: prepared with --no-images; pretraining needs images")
    data.require_reports("CLIP pre-training")
    if not (data.studies["split"] == "train").any():
        raise ChestClipError(f"{data.root}: no training study (an empty or partial dataset)")
    L.seed_everything(config.seed, workers=True, verbose=False)
    # rank 0 trains (or reloads) the tokenizer and saves it; the other ranks read that one
    if is_leader():
        tokenizer = prepare_tokenizer(config, data, layout.tokenizer, resume)
    leader_barrier()
    if not is_leader():
        tokenizer = load_tokenizer(layout.tokenizer)
    model = build_clip(clip_config(config, int(data.array.shape[1])), vocab_size=len(tokenizer))
    module = ClipModule(model, ClipLoss(), **settings.model_dump(include=OPTIMISATION))
    transform = make_augment(**settings.augment.model_dump())
    datamodule = PairDataModule(
        data,
        tokenizer,
        batch_size=settings.batch_size,
        max_text_length=config.model.max_text_length,
        num_workers=settings.num_workers,
        views=settings.views,
        train_transform=transform,
        seed=config.seed,
    )
    best = ModelCheckpoint(
        dirpath=checkpoints, filename="best", monitor="val/loss", mode="min", save_top_k=1
    )
    # every epoch, improved or not (save_last only follows saves of the monitored checkpoint)
    latest = ModelCheckpoint(
        dirpath=checkpoints, filename="last", save_top_k=1, enable_version_counter=False
    )
    history = EpochHistory(layout.pretrain_history)
    callbacks = [best, latest, history, FinalMetrics(), *callbacks]
    if settings.early_stopping_patience:
        callbacks.append(
            EarlyStopping("val/loss", patience=settings.early_stopping_patience, mode="min")
        )
    trainer = build_trainer(
        **settings.trainer_options(),
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=run,
        enable_model_summary=False,
    )
    if trainer.is_global_zero:
        save_run_config(config, layout.config)
        atomic_write_json(
            layout.env, environment(config.seed) | {"resumed": resume and last.exists()}
        )
    call = {
        "stage": "pretrain",
        "data": str(data.root.resolve()),
        "run": str(run.resolve()),
        "config": config.model_dump(mode="json"),
        "resume": resume,
    }
    if resume and last.exists():
        check_checkpoint(last)
    for logger in loggers:
        logger.log_hyperparams(flat_hyperparameters(config.model_dump(mode="json")))
    try:
        with spawning_children(call):
            trainer.fit(
                module,
                datamodule=datamodule,
                ckpt_path=str(last) if resume and last.exists() else None,
            )
    finally:
        finish_loggers(loggers)

    best_path = Path(best.best_model_path or last)
    if trainer.is_global_zero:
        state = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
        save_clip(module.model, tokenizer, layout.clip)
        views_used = {"views_used": "frontal" if datamodule.projection else "all"}
        atomic_write_json(layout.training_data, training_data(data) | views_used)
        layout.clip_sha256()  # hashed once, now, for the heads' fingerprints
        frame = history.frame()
        with atomic_path(layout.clip_metrics) as tmp:
            frame.to_csv(tmp, index=False)
        plot_clip_history(frame, layout.plot("clip_loss"))
    return PretrainResult(run, layout.clip, history.frame(), best_path)
