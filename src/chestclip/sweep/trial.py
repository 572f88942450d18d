"""One trial: an ordinary run directory (pretrain, then probe) and its validation metrics. Nothing
here reads the test split. A trial runs in this process, or in a fresh one pinned to one GPU."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import torch

from chestclip.config import RunConfig
from chestclip.errors import ChestClipError
from chestclip.training.pretrain import pretrain
from chestclip.training.probe import probe


def run_trial(run: Path, data_dir: Path, config: RunConfig) -> dict[str, float]:
    """Pretrain and probe into ``run``; each head's validation ROC-AUC (``probe_val_auc_<head>``)
    and the validation CLIP loss of the kept epoch (``clip_val_loss``)."""
    result = pretrain(data_dir, run, config)
    metrics = {f"probe_val_auc_{head.name}": head.val_auc for head in probe(run, data_dir, config)}
    return metrics | {"clip_val_loss": float(result.history["val_loss"].min())}


def worker_gpus(jobs: int) -> list[str]:
    """The GPU ids for ``jobs`` trials at once, one each; none for one trial at a time (which
    then runs in this process, on whatever the config's ``pretrain.accelerator`` picks)."""
    if jobs == 1:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = (
        [part.strip() for part in visible.split(",") if part.strip()]
        if visible is not None
        else [str(i) for i in range(torch.cuda.device_count())]
    )
    if len(ids) < jobs:
        raise ChestClipError(
            f"--jobs {jobs}: {len(ids)} GPU(s) visible; parallel trials run one per GPU"
        )
    return ids[:jobs]


def pin_gpu(gpu: str) -> None:
    """Worker initializer: the process sees only its GPU (set before CUDA initialises)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def launch(gpu: str | None, function: Callable, *args) -> Future:
    """``function(*args)`` now in this process (``gpu`` None: the future is done on return), or
    in a fresh spawned process that sees only ``gpu`` — a new process per trial also gives its
    GPU memory back in full. Exceptions land in the future; KeyboardInterrupt propagates."""
    if gpu is None:
        future: Future = Future()
        try:
            future.set_result(function(*args))
        except Exception as err:
            future.set_exception(err)
        return future
    executor = ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"), initializer=pin_gpu, initargs=(gpu,)
    )
    future = executor.submit(function, *args)
    executor.shutdown(wait=False)  # the worker exits once this one task is done
    return future
