"""Optional dependencies, installed as extras (``pip install 'chestclip[serve]'``) so the core
install stays lean. Code that needs one calls :func:`require_extra` before importing it."""

from __future__ import annotations

import importlib.util

from chestclip.errors import ChestClipError

# extra → the top-level modules it provides (pyproject.toml's [project.optional-dependencies])
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "fastapi_offline", "uvicorn", "python_multipart"),
    "sweep": ("optuna",),
    "onnx": ("onnx", "onnxruntime"),
    "tensorboard": ("tensorboard",),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
}
# the pip extra that installs each entry of EXTRAS (the three loggers come together)
PIP_EXTRA = {"tensorboard": "loggers", "wandb": "loggers", "mlflow": "loggers"}


class MissingExtraError(ChestClipError, ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require_extra(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` (one line) when a module of ``extra`` is missing."""
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"{feature} needs {', '.join(missing)}: "
            f"pip install 'chestclip[{PIP_EXTRA.get(extra, extra)}]'"
        )
