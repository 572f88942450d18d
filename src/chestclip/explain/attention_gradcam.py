"""Grad-CAM on the last layer's self-attention: the paper's explanation method.

What is computed, per attention head ``h`` of the last encoder layer, with ``A_h`` its softmax
attention probabilities ``[N, N]`` (token 0 the CLS) and ``G_h = ∂score/∂A_h``:

    w_h = mean over the patch columns p of G_h[0, p]
    map[p] = ReLU(Σ_h w_h · A_h[0, p])

The "feature maps" are the CLS query's attention over the patches (row 0, patch columns), and the
weights are Grad-CAM's global average of the gradient over that same row and those columns. Why
row 0 only: the encoder's feature is the last layer's CLS output (``encoders.ImageEncoder``), so
the score reaches this layer's attention only through the CLS query, and every other row of
``G_h`` is exactly 0. Why the patch columns only: the CLS→CLS entry (and any other prefix
token's column) is not a place in the image. It is therefore NOT the mean over both token axes
of the full matrix: that would divide by N² instead of the number of patches and include the
CLS→CLS gradient, which changes the heads' relative weights, not just their scale.
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
