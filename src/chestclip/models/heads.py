"""Classifier heads on frozen CLIP features: the paper's MLP (1024 → 512 → 512 → 2, softmax over
normal/diseased) and its multi-label counterpart (one sigmoid per finding, masked BCE)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

# what each kind of head reads: the image embedding, the report embedding, or both concatenated
HEAD_INPUTS = {"multimodal": ("image", "text"), "image": ("image",), "text": ("text",)}


class MLPHead(nn.Module):
    """``features`` [B, in_dim] → logits [B, n_classes]; softmax over normal/diseased."""

    def __init__(
        self,
        in_dim: int,
        hidden_sizes: Sequence[int] = (512, 512),
        dropout: float = 0.0,
        n_classes: int = 2,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.hidden_sizes, self.dropout = in_dim, tuple(hidden_sizes), dropout

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


class MultiLabelHead(MLPHead):
    """``features`` [B, in_dim] → logits [B, K], one independent sigmoid per finding.

    The finding names travel with the head (its outputs are meaningless without them).
    """

    def __init__(
        self,
        in_dim: int,
        finding_names: Sequence[str],
        hidden_sizes: Sequence[int] = (512, 512),
        dropout: float = 0.0,
    ):
        if not finding_names:
            raise ValueError("a multi-label head needs at least one finding name")
        super().__init__(in_dim, hidden_sizes, dropout, n_classes=len(finding_names))
        self.finding_names = tuple(finding_names)

    def probabilities(self, features: Tensor) -> Tensor:
        """P(finding present) [B, K]."""
        return self(features).sigmoid()


def masked_bce_with_logits(
    logits: Tensor, targets: Tensor, mask: Tensor, pos_weight: Tensor | None = None
) -> Tensor:
    """Binary cross-entropy averaged over the unmasked entries only.

    ``logits``, ``targets`` (0/1) and ``mask`` (True = counted) are [B, K]; ``pos_weight`` [K]
    weighs positives per finding as in ``BCEWithLogitsLoss``. A batch with every entry masked
    gives 0 (still differentiable), not NaN.
    """
    losses = F.binary_cross_entropy_with_logits(
        logits, targets.to(logits.dtype), pos_weight=pos_weight, reduction="none"
    )
    weights = mask.to(logits.dtype)
    return (losses * weights).sum() / weights.sum().clamp(min=1.0)
