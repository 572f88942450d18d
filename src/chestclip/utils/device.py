"""Where inference runs: one ``--device`` for every stage after pre-training (feature extraction,
heads, evaluation, explanations, zero-shot, retrieval, predict, serve). CUDA when there is one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from chestclip.errors import ChestClipError

# Lightning precision names → the autocast dtype used for inference on a GPU
AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


class DeviceError(ChestClipError):
    """A requested device this machine does not have."""


def resolve_device(requested: str | torch.device | None = None) -> torch.device:
    """``None`` or ``auto``: the CUDA GPU when there is one, else the CPU. Anything else must
    exist here (``cpu``, ``cuda``, ``cuda:1``); if not, a one-line error says why."""
    if requested is None or str(requested) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise DeviceError(f"device {requested!r}: not a device name (cpu, cuda, cuda:1)") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise DeviceError(f"device {requested!r}: no CUDA GPU visible (torch is {build})")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {requested!r}: only {count} CUDA GPU(s) visible")
        return device
    raise DeviceError(f"device {requested!r}: not supported; use cpu or cuda[:N]")


def trainer_device(device: torch.device) -> dict[str, Any]:
    """The ``lightning.Trainer`` arguments that train on exactly ``device``."""
    if device.type == "cuda":
        return {"accelerator": "gpu", "devices": [device.index or 0]}
    return {"accelerator": "cpu", "devices": 1}


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def inference_precision(device: torch.device, precision: str = "32-true") -> Iterator[None]:
    """Autocast as the run's pretraining precision says (``bf16-mixed``, ``16-mixed``) on a GPU;
    full precision on the CPU, where half-precision kernels are slower, not faster."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None or device.type != "cuda":
        yield
        return
    with torch.autocast("cuda", dtype=dtype):
        yield
