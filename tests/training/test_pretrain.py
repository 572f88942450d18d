"""The tiny CLIP trained on phantoms: learning, outputs, resume after an interruption."""

import lightning as L
import pandas as pd
import pytest
import torch

from chestclip.config import load_run_config
from chestclip.data import PreparedData
from chestclip.errors import ChestClipError
from chestclip.models import ClipLoss, load_clip
from chestclip.training.clip_module import ClipModule
from chestclip.training.datamodule import PairDataModule
from chestclip.training.pretrain import pretrain

pytestmark = pytest.mark.slow


def test_validation_loss_falls_and_recall_beats_chance(trained_run):
    history = trained_run.history
    assert list(history["epoch"]) == list(range(12))
    assert history["val_loss"].iloc[-3:].mean() < history["val_loss"].iloc[0]
    assert history["val_recall@5"].iloc[-3:].mean() > 1.5 * history["val_chance@5"].iloc[0]


def test_run_artefacts(trained_run):
    run = trained_run.run
    for name in ("config.yaml", "env.json", "clip/config.json", "clip/model.safetensors",
                 "clip/metrics.csv", "plots/clip_loss.png", "checkpoints/last.ckpt"):  # fmt: skip
        assert (run / name).is_file(), name
    assert load_run_config(run / "config.yaml").pretrain.epochs == 12
    assert pd.read_csv(run / "clip/metrics.csv").equals(
        pd.read_csv(run / "checkpoints/history.csv")
    )


def test_saved_model_is_the_best_checkpoint(trained_run):
    model, _ = load_clip(trained_run.run)
    state = torch.load(trained_run.best_checkpoint, weights_only=True)["state_dict"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[f"model.{name}"]), name


def test_the_kept_clip_is_the_epoch_with_the_lowest_validation_loss(trained_run, prepared_phantoms):
    history = pd.read_csv(trained_run.run / "clip/metrics.csv")
    lowest = history.loc[history["val_loss"].idxmin()]
    assert history["val_loss"].max() > lowest["val_loss"]  # a curve to choose on
    assert torch.load(trained_run.best_checkpoint, weights_only=True)["epoch"] == lowest["epoch"]
    # RUN/clip itself, validated again on the same split, scores that lowest loss
    model, tokenizer = load_clip(trained_run.run)
    config = load_run_config(trained_run.run / "config.yaml")
    datamodule = PairDataModule(
        PreparedData(prepared_phantoms),
        tokenizer,
        config.pretrain.batch_size,
        config.model.max_text_length,
        views=config.pretrain.views,
    )
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    (metrics,) = trainer.validate(ClipModule(model, ClipLoss()), datamodule=datamodule)
    assert metrics["val/loss"] == pytest.approx(lowest["val_loss"], rel=1e-4)


def test_existing_run_needs_resume(trained_run, prepared_phantoms):
    with pytest.raises(ChestClipError, match="--resume"):
        pretrain(prepared_phantoms, trained_run.run, load_run_config("tiny"))


class Interrupt(L.Callback):
    """Stops the run like a kill would: after the checkpoint of epoch ``at - 1`` was written."""

    def __init__(self, at: int):
        self.at = at

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.at:
            raise RuntimeError("simulated kill")


class RecordResumeState(L.Callback):
    def on_train_start(self, trainer, module):
        self.epoch = trainer.current_epoch
        state = trainer.optimizers[0].state_dict()["state"]
        self.steps = {int(s["step"]) for s in state.values()}


def test_resume_continues_from_saved_epoch_with_optimizer_state(prepared_phantoms, tmp_path):
    config = load_run_config("tiny", ["pretrain.epochs=3"])
    with pytest.raises(RuntimeError, match="simulated kill"):
        pretrain(prepared_phantoms, tmp_path, config, callbacks=[Interrupt(at=2)])
    saved = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True)
    assert saved["epoch"] == 1
    saved_steps = {int(s["step"]) for s in saved["optimizer_states"][0]["state"].values()}

    probe = RecordResumeState()
    result = pretrain(prepared_phantoms, tmp_path, config, resume=True, callbacks=[probe])
    assert probe.epoch == 2
    assert probe.steps == saved_steps and saved_steps == {saved["global_step"]}
    assert list(result.history["epoch"]) == [0, 1, 2]
