"""Token Grad-CAM on the input of the last block's attention (its first LayerNorm's output).

The patch tokens there play the role of a CNN's last feature map: one ``F``-channel vector per
grid cell. Channel weights are the gradients averaged over the patch tokens; the map is
``ReLU(Σ_c w_c · A_c)``. Needs no attention probabilities, so it runs with any attention kernel.
"""

from __future__ import annotations

from torch import Tensor

from chestclip.explain.base import (
    AttentionCamMethod,
    ScoreFunction,
    norms_before_attention,
    outputs_and_gradients,
)
from chestclip.models import ChestCLIP


class TokenGradCAM(AttentionCamMethod):
    name = "gradcam"

    def grid_map(self, model: ChestCLIP, pixels: Tensor, score_fn: ScoreFunction) -> Tensor:
        encoder = model.image_encoder
        rows, cols = encoder.token_grid
        (tokens,), (gradient,) = outputs_and_gradients(
            norms_before_attention(encoder)[-1:], lambda out: out, pixels, score_fn
        )  # [1, N, F] each
        patches = tokens[0, -rows * cols :]  # [P, F], CLS dropped
        weights = gradient[0, -rows * cols :].mean(dim=0)  # [F]
        return (patches @ weights).clamp(min=0).view(rows, cols)
