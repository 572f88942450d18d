"""Experiment loggers beside CSV (TensorBoard, W&B offline, MLflow's local store), chosen in the
config; each gets the resolved config as hyperparameters, the training curves and final/*."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
import yaml

from chestclip.config import ConfigError, load_run_config
from chestclip.training.loggers import flat_hyperparameters
from chestclip.training.pretrain import pretrain
from chestclip.utils.extras import MissingExtraError

SHORT = ["pretrain.epochs=2", "pretrain.limit_train_batches=2", "pretrain.log_every_n_steps=1"]


@pytest.mark.slow
def test_every_logger_writes_its_files(prepared_phantoms, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is the default
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    loggers = "pretrain.loggers=[csv, tensorboard, wandb, mlflow]"
    result = pretrain(
        prepared_phantoms, tmp_path / "run", load_run_config("tiny", [*SHORT, loggers])
    )
    run = result.run
    best = float(result.history["val_loss"].min())

    csv = pd.read_csv(run / "logs/version_0/metrics.csv")
    assert {"val/loss", "final/val_loss_best"} <= set(csv.columns)
    assert csv["final/val_loss_best"].dropna().tolist() == pytest.approx([best])
    assert yaml.safe_load((run / "logs/version_0/hparams.yaml").read_text())["pretrain/lr"] == 1e-3

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard/version_0"))
    events.Reload()
    assert {"val/loss", "final/val_loss_best"} <= set(events.Tags()["scalars"])
    assert events.Scalars("final/val_loss_best")[0].value == pytest.approx(best)
    assert "pretrain/lr" in (run / "tensorboard/version_0/hparams.yaml").read_text()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run / 'mlflow.db'}")
    (logged,) = client.search_runs([client.get_experiment_by_name("chestclip").experiment_id])
    assert logged.info.run_name == "run" and logged.data.params["pretrain/lr"] == "0.001"
    assert logged.data.params["model/image_encoder"] == "tiny-resnet"
    assert logged.data.metrics["final/val_loss_best"] == pytest.approx(best)
    assert "val/loss" in logged.data.metrics

    (offline,) = (run / "wandb").glob("offline-run-*/run-*.wandb")  # the run W&B syncs later
    recorded = offline.read_bytes()
    assert all(key in recorded for key in (b"pretrain/lr", b"val/loss", b"final/val_loss_best"))
    import wandb

    assert wandb.run is None  # finished: the next run in this process starts its own


def test_a_missing_logger_extra_is_one_line_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    config = load_run_config("tiny", ["pretrain.loggers=[csv, mlflow]"])
    with pytest.raises(
        MissingExtraError,
        match=r"^pretrain.loggers: mlflow needs mlflow: pip install 'chestclip\[loggers\]'$",
    ):
        pretrain(tmp_path / "no-data-needed", tmp_path / "run", config)
    assert not (tmp_path / "run").exists()


def test_unknown_logger_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"pretrain\.loggers"):
        load_run_config("tiny", ["pretrain.loggers=[csv, neptune]"])


def test_hyperparameters_are_flat_section_keys() -> None:
    flat = flat_hyperparameters(load_run_config("tiny").model_dump(mode="json"))
    assert flat["pretrain/lr"] == 1e-3 and flat["model/init_from"] == "None"
    assert flat["pretrain/loggers"] == "['csv']" and flat["pretrain/augment/enabled"] is False
