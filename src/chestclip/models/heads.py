"""Classifier heads on frozen CLIP features (the paper's MLP: 1024 → 512 → 512 → 2)."""

from __future__ import annotations

from collections.abc import Sequence

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
