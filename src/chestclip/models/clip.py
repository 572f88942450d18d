"""The CLIP model: two encoders, two projection heads, a shared L2-normalised embedding space."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from chestclip.models.encoders import ImageEncoder, TextEncoder

# linear: CLIP's bias-free map; mlp: in → in → out with biases; open-clip-mlp: open_clip's
# bias-free in → (in + out) / 2 → out (BiomedCLIP's text projection)
PROJECTIONS: tuple[str, ...] = ("linear", "mlp", "open-clip-mlp")
ATTN_IMPLEMENTATIONS: tuple[str, ...] = ("eager", "sdpa")


@dataclass
class ChestCLIPConfig:
    """Everything needed to rebuild a ChestCLIP; saved as ``config.json`` beside its weights.

    ``image_encoder``/``text_encoder`` are a preset name (``chestclip.models.IMAGE_PRESETS`` /
    ``TEXT_PRESETS``), a Hugging Face name or a local directory. ``init_from`` instead names a
    pretrained dual encoder (an HF ``CLIPModel`` or ``VisionTextDualEncoderModel``, or an
    open_clip checkpoint) whose towers, projections and pooling the model starts from.
    ``build_clip`` fills in the ``*_encoder_config`` dicts (the backbones' transformers configs)
    and the image mean/std, so a saved model is rebuilt from this file alone, without the hub.
    """

    image_encoder: str = "google/vit-base-patch16-224"
    text_encoder: str = "bert-base-uncased"
    embed_dim: int = 512
    projection: Literal["linear", "mlp"] = "linear"
    temperature: float = 0.1
    learnable_temperature: bool = False
    max_logit_scale: float = 100.0
    attn_implementation: Literal["eager", "sdpa"] = "sdpa"
    image_size: int = 224
    max_text_length: int = 128
    text_pooling: Literal["cls", "mean", "pooler"] = "cls"
    image_pooling: Literal["cls", "pooler"] = "cls"
    init_from: str | None = None
    image_projection_kind: str | None = None  # None: ``projection``
    text_projection_kind: str | None = None  # None: ``projection``
    image_encoder_config: dict[str, Any] | None = None
    text_encoder_config: dict[str, Any] | None = None
    image_mean: list[float] | None = None
    image_std: list[float] | None = None

    def __post_init__(self) -> None:
        for kind in (self.projection, self.image_projection_kind, self.text_projection_kind):
            if kind is not None and kind not in PROJECTIONS:
                raise ValueError(f"projection must be one of {PROJECTIONS}, got {kind!r}")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(
                f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, "
                f"got {self.attn_implementation!r}"
            )
        if self.temperature <= 0 or 1.0 / self.temperature > self.max_logit_scale:
            raise ValueError(
                f"temperature must lie in [1/max_logit_scale, inf) = "
                f"[{1.0 / self.max_logit_scale:g}, inf), got {self.temperature}"
            )
        for name in ("embed_dim", "image_size", "max_text_length"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the content of ``config.json``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ChestCLIPConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ChestCLIPConfig keys: {', '.join(unknown)}")
        return cls(**values)


class ClipOutput(NamedTuple):
    """What :meth:`ChestCLIP.forward` returns (a tuple, so DDP and Lightning handle it natively)."""

    image_embeds: Tensor  # [B, D], unit norm
    text_embeds: Tensor  # [B, D], unit norm
    logit_scale: Tensor  # scalar, 1/τ


def make_projection(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """A projection head ``[B, in_dim] → [B, out_dim]``: CLIP's bias-free linear map or an MLP."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim, bias=False)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, in_dim), nn.GELU(), nn.Linear(in_dim, out_dim))
    if kind == "open-clip-mlp":
        hidden = (in_dim + out_dim) // 2
        return nn.Sequential(
            nn.Linear(in_dim, hidden, bias=False), nn.GELU(), nn.Linear(hidden, out_dim, bias=False)
        )
    raise ValueError(f"projection must be one of {PROJECTIONS}, got {kind!r}")


# What a ChestCLIP pushed on its own says on the Hub (a run exported with `chestclip export
# --format hf` or `chestclip push` carries the run's model card instead).
HUB_CARD = """---
{{ card_data }}
---

# chestclip CLIP model

Chest X-ray and report encoders projected to one embedding space (chestclip's ChestCLIP).
Load it with `chestclip.models.ChestCLIP.from_pretrained("<this repository>")`.
Research use only: not a medical device.
"""


class ChestCLIP(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="chestclip",
    license="apache-2.0",
    tags=["chestclip", "clip", "chest-x-ray", "medical-imaging"],
    model_card_template=HUB_CARD,
):
    """Image and text encoders projected to a shared, L2-normalised ``embed_dim`` space.

    Build one with ``chestclip.models.build_clip(config)``; this class only wires given encoders.
    ``save_pretrained``/``push_to_hub``/``from_pretrained`` (``huggingface_hub``'s
    ``PyTorchModelHubMixin``) write and read ``config.json`` + ``model.safetensors``, the layout
    of a run's ``clip/``.
    """

    def __init__(
        self, config: ChestCLIPConfig, image_encoder: ImageEncoder, text_encoder: TextEncoder
    ) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.image_projection = make_projection(
            config.image_projection_kind or config.projection,
            image_encoder.output_dim,
            config.embed_dim,
        )
        self.text_projection = make_projection(
            config.text_projection_kind or config.projection,
            text_encoder.output_dim,
            config.embed_dim,
        )
        self.max_logit_scale = float(config.max_logit_scale)
        initial_scale = torch.tensor(1.0 / config.temperature)
        if config.learnable_temperature:
            # CLIP learns log(1/τ), so the scale stays positive; it starts at the paper's τ.
            self.log_logit_scale = nn.Parameter(initial_scale.log())
        else:
            self.register_buffer("fixed_logit_scale", initial_scale)

    @property
    def logit_scale(self) -> Tensor:
        """``1/τ`` (scalar): fixed, or ``exp`` of the learned log scale.

        The learned one is kept in range by :meth:`clamp_logit_scale` after each optimiser step,
        as in open_clip: a clamp here would zero its gradient past the bound and freeze it there.
        """
        if self.config.learnable_temperature:
            return self.log_logit_scale.exp()
        return self.fixed_logit_scale

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Clamp the learned log scale to [0, ln ``max_logit_scale``] (τ between
        1/``max_logit_scale`` and 1); call after each optimiser step. No-op for a fixed τ."""
        if self.config.learnable_temperature:
            self.log_logit_scale.clamp_(0.0, math.log(self.max_logit_scale))

    def encode_image(self, pixels: Tensor) -> Tensor:
        """``pixels`` [B, 1, H, W] in [0, 1] → unit-norm embeddings [B, D]."""
        return F.normalize(self.image_projection(self.image_encoder(pixels)), dim=-1)

    def encode_text(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """``input_ids``, ``attention_mask`` [B, L] → unit-norm embeddings [B, D]."""
        features = self.text_encoder(input_ids, attention_mask)
        return F.normalize(self.text_projection(features), dim=-1)

    def forward(self, pixels: Tensor, input_ids: Tensor, attention_mask: Tensor) -> ClipOutput:
        """Both embeddings ``[B, D]`` and the logit scale, ready for :class:`ClipLoss`."""
        return ClipOutput(
            self.encode_image(pixels), self.encode_text(input_ids, attention_mask), self.logit_scale
        )

    def _save_pretrained(self, save_directory: Path) -> None:
        """The mixin's hook behind ``save_pretrained``/``push_to_hub``."""
        from chestclip.models.io import write_clip_files

        write_clip_files(self, save_directory)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        force_download: bool = False,
    ) -> ChestCLIP:
        """A saved ChestCLIP in eval mode, rebuilt offline from its ``config.json``: from a
        directory (``save_pretrained``'s, a run or its ``clip/``, a run exported for the Hub) or
        a Hugging Face Hub repository id (``config.json`` and ``model.safetensors`` only)."""
        from chestclip.models.io import load_clip_model, pretrained_clip_dir

        hub = {"revision": revision, "token": token, "cache_dir": cache_dir}
        hub |= {"local_files_only": local_files_only, "force_download": force_download}
        return load_clip_model(pretrained_clip_dir(pretrained_model_name_or_path, **hub))
