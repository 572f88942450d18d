"""Classifier training under DDP (2 CPU processes, gloo): the best epoch is chosen on the whole
validation set, gathered across ranks, and the outputs are written once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from chestclip.models.heads import MLPHead
from chestclip.training.classifier_module import ClassifierModule, fit_keep_best

WORLD_SIZE = 2
TRAIN_BATCH = 16  # global: 8 per rank under DDP, so both runs take the same optimiser steps

# Fork, as in tests/models/test_loss_distributed.py: each rank starts at once.
pytestmark = pytest.mark.skipif(
    not dist.is_available() or "fork" not in mp.get_all_start_methods(),
    reason="needs torch.distributed and the fork start method",
)


def as_rank(rank: int, port: int) -> None:
    """Make this process rank ``rank`` of a job launched from outside Lightning (as torchrun
    does): Lightning then joins the job instead of starting processes."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        TORCHELASTIC_RUN_ID="test",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        GROUP_RANK="0",
        NODE_RANK="0",
        WORLD_SIZE=str(WORLD_SIZE),
        LOCAL_WORLD_SIZE=str(WORLD_SIZE),
    )
    torch.set_num_threads(1)


def toy_data() -> dict[str, torch.Tensor]:
    """A noisy linear task; 41 validation rows, so DDP's sampler pads one rank's share."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64 + 41, 8, generator=generator)
    y = (x[:, 0] + 1.5 * torch.randn(len(x), generator=generator) > 0).long()
    return {"x": x[:64], "y": y[:64], "val_x": x[64:], "val_y": y[64:]}


def fit_head(
    data: dict[str, torch.Tensor], workdir: Path, devices: int, rank: int = 0
) -> tuple[int, float]:
    torch.manual_seed(0)
    module = ClassifierModule(MLPHead(8, (16,), 0.0), "adam", 3e-2, 0.0)
    train_set = TensorDataset(data["x"], data["y"])
    # Unshuffled training shares (Lightning's own would shuffle): rank r takes rows r, r + 2, ...
    # so each step's two shares make up the one process's batch, and DDP's gradient average is
    # its gradient. Validation gets Lightning's sampler: that is what is tested.
    sampler = DistributedSampler(train_set, devices, rank, shuffle=False) if devices > 1 else None
    train = DataLoader(train_set, batch_size=TRAIN_BATCH // devices, sampler=sampler)
    val = DataLoader(TensorDataset(data["val_x"], data["val_y"]), batch_size=8)
    return fit_keep_best(
        module,
        train,
        val,
        workdir,
        max_epochs=8,
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )


def head_rank(rank: int, port: int, data: dict, out: Path) -> None:
    as_rank(rank, port)
    try:
        best_epoch, val_auc = fit_head(data, out / f"work{rank}", WORLD_SIZE, rank)
        (out / f"rank{rank}.json").write_text(json.dumps([best_epoch, val_auc]))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_ddp_chooses_the_same_epoch_and_auc_as_one_process(tmp_path, tcp_port):
    data = toy_data()
    mp.start_processes(
        head_rank, args=(tcp_port, data, tmp_path), nprocs=WORLD_SIZE, start_method="fork"
    )
    single_epoch, single_auc = fit_head(data, tmp_path / "single", 1)
    for rank in range(WORLD_SIZE):
        epoch, auc = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert epoch == single_epoch
        assert auc == pytest.approx(single_auc, abs=1e-6)


def finetune_rank(rank: int, port: int, prepared: Path, run: Path, writes: Path) -> None:
    from chestclip.config import load_run_config
    from chestclip.training import finetune
    from chestclip.utils import distributed

    as_rank(rank, port)
    opened = distributed.atomic_directory

    def recorded(path):
        (writes / f"rank{rank}-{os.getpid()}-{len(list(writes.iterdir()))}").touch()
        return opened(path)

    distributed.atomic_directory = recorded
    config = load_run_config(
        "tiny",
        ["pretrain.epochs=2", "pretrain.limit_train_batches=3", "pretrain.accelerator=cpu",
         f"pretrain.devices={WORLD_SIZE}", "pretrain.strategy=ddp"],
    )  # fmt: skip
    try:
        finetune.finetune_image_baseline(prepared, run, config)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_finetuned_baseline_reports_the_full_validation_auc_and_writes_once(
    prepared_phantoms, tmp_path, tcp_port
):
    writes = tmp_path / "writes"
    writes.mkdir()
    mp.start_processes(
        finetune_rank,
        args=(tcp_port, prepared_phantoms, tmp_path / "run", writes),
        nprocs=WORLD_SIZE,
        start_method="fork",
    )
    assert [p.name.split("-")[0] for p in writes.iterdir()] == ["rank0"]
    directory = tmp_path / "run/baselines/image-finetuned"
    info = json.loads((directory / "info.json").read_text())
    val = pd.read_csv(directory / "scores.csv").query("split == 'val'")
    images = pd.read_csv(prepared_phantoms / "images.csv")
    assert len(val) == (images["split"] == "val").sum()
    # the recorded AUC is the saved model's on the whole validation set, not on one rank's half
    assert info["val_auc"] == pytest.approx(roc_auc_score(val["label"], val["score"]), abs=1e-6)
    assert not list(directory.parent.glob(".*"))  # no other rank's half-written directory left
