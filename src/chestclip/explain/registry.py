"""The registry of CAM methods by name, and the one-call entry point :func:`explain`."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from chestclip.explain.attention_gradcam import AttentionGradCAM
from chestclip.explain.base import CamMethod, ScoreFunction
from chestclip.explain.cnn_gradcam import CNNGradCAM
from chestclip.explain.gradcam import TokenGradCAM
from chestclip.explain.rollout import GradientRollout
from chestclip.models import ChestCLIP

METHODS: dict[str, CamMethod] = {
    method.name: method
    for method in (AttentionGradCAM(), TokenGradCAM(), GradientRollout(), CNNGradCAM())
}


def methods_for(model: ChestCLIP) -> list[str]:
    """Names of the methods that apply to ``model``'s image encoder (ViT: three; CNN: one)."""
    return [name for name, method in METHODS.items() if method.applies_to(model.image_encoder)]


def explain(model: ChestCLIP, pixels: Tensor, score_fn: ScoreFunction, method: str) -> np.ndarray:
    """Heat map float32 ``[H, W]`` in [0, 1] of ``score_fn`` for ``pixels`` [1, 1, H, W]."""
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}: expected one of {list(METHODS)}")
    if not METHODS[method].applies_to(model.image_encoder):
        raise ValueError(
            f"{method} does not apply to a {type(model.image_encoder.backbone).__name__} image "
            f"encoder; methods that do: {', '.join(methods_for(model)) or 'none'}"
        )
    return METHODS[method](model, pixels, score_fn)
