"""Gradient-weighted attention rollout across all layers (Chefer, Gur & Wolf 2021, "Generic
attention-model explainability for interpreting bi-modal and encoder-decoder transformers").

Relevance starts as the identity; each layer adds its gradient-weighted attention
``Ā = mean_heads ReLU(∇A ⊙ A)`` propagated through the relevance so far: ``R ← R + Ā·R``.
The map is the CLS row of ``R`` over the patch tokens.
"""

from __future__ import annotations

import torch
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


class GradientRollout(AttentionCamMethod):
    name = "rollout"

    def grid_map(self, model: ChestCLIP, pixels: Tensor, score_fn: ScoreFunction) -> Tensor:
        encoder = model.image_encoder
        with eager_attention(encoder):
            attentions, gradients = outputs_and_gradients(
                attention_modules(encoder), attention_probabilities, pixels, score_fn
            )  # per layer [1, heads, N, N]
        tokens = attentions[0].shape[-1]
        relevance = torch.eye(tokens, device=attentions[0].device)  # [N, N]
        for attention, gradient in zip(attentions, gradients, strict=True):
            weighted = (gradient * attention).clamp(min=0).mean(dim=1)[0]  # [N, N]
            relevance = relevance + weighted @ relevance
        return patch_tokens(relevance[0], encoder.token_grid).view(encoder.token_grid)
