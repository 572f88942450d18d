"""The one place a ``lightning.Trainer`` is built and a checkpoint is checked before resuming,
so that what Lightning refuses, or would wait on for ever, is one line naming the setting."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException

from chestclip.config import ConfigError
from chestclip.errors import ChestClipError

HARDWARE = ("accelerator", "devices", "strategy", "num_nodes", "precision")


def build_trainer(**options: Any) -> L.Trainer:
    """``lightning.Trainer(**options)``; an unknown accelerator, strategy or precision, or more
    devices than the machine has, raises ConfigError naming the ``pretrain.*`` settings."""
    settings = ", ".join(f"pretrain.{k}={options[k]!r}" for k in HARDWARE if k in options)
    _check_cpu_devices(options, settings)
    try:
        return L.Trainer(**options)
    except (ValueError, MisconfigurationException, RuntimeError) as err:
        raise ConfigError(f"{settings}: {' '.join(str(err).split())}") from None


def _check_cpu_devices(options: dict[str, Any], settings: str) -> None:
    """On CPU each device is a process; asking for more than the cores makes Lightning wait for
    ever for ranks that never join, so it is refused here."""
    accelerator, devices = options.get("accelerator", "auto"), options.get("devices", "auto")
    on_cpu = accelerator == "cpu" or (
        accelerator == "auto"
        and not torch.cuda.is_available()
        and not torch.backends.mps.is_available()
    )
    count = int(devices) if isinstance(devices, int | str) and str(devices).isdigit() else None
    cores = os.cpu_count() or 1
    if on_cpu and count is not None and count > cores:
        raise ConfigError(
            f"{settings}: {count} CPU devices asked for, this machine has {cores} cores "
            "(on CPU each device is a process)"
        )


def check_checkpoint(path: str | Path) -> None:
    """ChestClipError unless ``path`` is a whole checkpoint (a zip archive, as ``torch.save``
    writes, with every member's CRC intact): a truncated ``last.ckpt`` would otherwise fail
    deep inside Lightning."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        broken = str(err) or type(err).__name__
    if broken is not None:
        raise ChestClipError(
            f"{path}: truncated or corrupt checkpoint ({broken}); delete it to start again"
        )
