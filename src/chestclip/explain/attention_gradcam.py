"""Grad-CAM on the last layer's self-attention: the paper's explanation method.

The "feature maps" are the heads' CLS→patch attention rows of the last encoder layer and the
weights are the gradients of the score with respect to them, averaged over the patches (Grad-CAM's
global average pooling). Only the CLS output of the last layer reaches the head, so every other
query row has zero gradient: averaging over both token axes would give the same weights up to a
positive factor, which normalisation removes.
"""

from __future__ import annotations

from torch import Tensor

from chestclip.explain.base import (
    AttentionCamMethod,
    ScoreFunction,
    attention_modules,
    attention_probabilities,
    eager_attention,
    outputs_and_gradients,
    patch_tokens,
)
from chestclip.models import ChestCLIP


class AttentionGradCAM(AttentionCamMethod):
    name = "attention-gradcam"

    def grid_map(self, model: ChestCLIP, pixels: Tensor, score_fn: ScoreFunction) -> Tensor:
        encoder = model.image_encoder
        grid = encoder.token_grid
        with eager_attention(encoder):
            (attention,), (gradient,) = outputs_and_gradients(
                attention_modules(encoder)[-1:], attention_probabilities, pixels, score_fn
            )  # [1, heads, N, N] each
        cls_rows = patch_tokens(attention[0, :, 0], grid)  # [heads, P]
        weights = patch_tokens(gradient[0, :, 0], grid).mean(dim=-1)  # [heads]
        cam = (weights[:, None] * cls_rows).sum(dim=0).clamp(min=0)  # [P]
        return cam.view(grid)
