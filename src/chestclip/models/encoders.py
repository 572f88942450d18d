"""Image and text encoders: thin wrappers turning a transformers backbone into ``[B, F]`` features.

The wrappers only adapt inputs and pick the pooled feature; they hold no file paths. Building a
backbone (pretrained weights, presets, attention implementation) is the factory's job.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from transformers import PreTrainedModel


def has_cls_token(backbone: PreTrainedModel) -> bool:
    """Whether a vision backbone is a ViT-style token model with a CLS token (ViT, DeiT, BEiT,
    CLIP's vision tower...).

    Decided from the module structure, not the model's name: CNNs (ResNet, ConvNeXt) and windowed
    transformers without a CLS token (Swin) are pooled with their ``pooler_output`` instead.
    """
    embeddings = getattr(backbone, "embeddings", None)
    return any(
        getattr(embeddings, name, None) is not None for name in ("cls_token", "class_embedding")
    )


# cls: the final-normalised CLS token (a dense+tanh pooler, as ViT's, is dropped); pooler: the
# backbone's pooler output (VisionTextDualEncoderModel's choice). CLIP's vision tower has no
# pooler layer: both give its CLS token after post_layernorm.
IMAGE_POOLINGS = ("cls", "pooler")


def _square_size(size: int | Sequence[int], what: str) -> int:
    if isinstance(size, int):
        return size
    if len(size) == 2 and size[0] == size[1]:
        return int(size[0])
    raise ValueError(f"only square {what} are supported, got {tuple(size)}")


class ImageEncoder(nn.Module):
    """Grey-scale X-rays ``[B, 1, H, W]`` in [0, 1] → backbone features ``[B, F]``.

    The single channel is replicated to the backbone's input channels and normalised with the
    backbone's own mean/std (those its weights were trained with). ViT-style backbones return the
    final-layernormed CLS token, or their ``pooler_output`` when they have one (CLIP's vision
    tower: the CLS token after ``post_layernorm``; a ViT whose pooler was kept); CNNs return their
    pooled output, flattened.

    Args:
        backbone: a transformers vision model (``ViTModel``, ``ResNetModel``, ``ConvNextModel``...).
        mean: per-channel mean, one value per backbone input channel.
        std: per-channel standard deviation, same length as ``mean``.
        image_size: input side length; ViT-style backbones require inputs of exactly this size
            (positional embeddings are interpolated when it differs from the checkpoint's size).
        pooling: how the factory built it (``IMAGE_POOLINGS``), recorded to rebuild it alike.
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        mean: Sequence[float],
        std: Sequence[float],
        image_size: int,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        if pooling not in IMAGE_POOLINGS:
            raise ValueError(f"image pooling must be one of {IMAGE_POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        config = backbone.config
        channels = int(config.num_channels)
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"mean/std need {channels} values (the backbone's input channels), "
                f"got {len(mean)} and {len(std)}"
            )
        self.backbone = backbone
        self.image_size = int(image_size)
        self.uses_cls_token = has_cls_token(backbone)
        self.image_mean = tuple(float(value) for value in mean)
        self.image_std = tuple(float(value) for value in std)
        # Non-persistent: mean/std travel in ChestCLIPConfig, the single place they are recorded.
        shape = (1, channels, 1, 1)
        self.register_buffer(
            "pixel_mean", torch.tensor(self.image_mean).view(shape), persistent=False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(self.image_std).view(shape), persistent=False
        )

        self.patch_size: int | None = None
        self._native_size: int | None = None
        if self.uses_cls_token:
            self.patch_size = _square_size(config.patch_size, "patches")
            self._native_size = _square_size(config.image_size, "images")
            if self.image_size % self.patch_size:
                raise ValueError(
                    f"image_size {self.image_size} is not a multiple of the patch size "
                    f"{self.patch_size}"
                )
            self.output_dim = int(config.hidden_size)
        elif getattr(config, "hidden_sizes", None):
            self.output_dim = int(config.hidden_sizes[-1])
        elif getattr(config, "hidden_size", None):
            self.output_dim = int(config.hidden_size)
        else:
            raise ValueError(
                f"cannot tell the feature size of a {type(backbone).__name__}: its config has "
                "neither hidden_sizes nor hidden_size"
            )

    @property
    def token_grid(self) -> tuple[int, int] | None:
        """``(rows, cols)`` of the ViT patch-token grid at ``image_size``; None for CNNs.

        The backbone's ``last_hidden_state`` is ``[B, prefix + rows * cols, F]``: the last
        ``rows * cols`` tokens are the patches in row-major order (what Grad-CAM reshapes).
        """
        if self.patch_size is None:
            return None
        side = self.image_size // self.patch_size
        return side, side

    def forward(self, pixels: Tensor) -> Tensor:
        """``pixels`` [B, 1, H, W] in [0, 1] → features [B, F]."""
        if pixels.ndim != 4 or pixels.shape[1] != 1:
            raise ValueError(f"pixels must be grey-scale [B, 1, H, W], got {tuple(pixels.shape)}")
        grey = pixels.expand(-1, self.pixel_mean.shape[1], -1, -1)
        pixel_values = (grey - self.pixel_mean) / self.pixel_std  # [B, C, H, W]
        if not self.uses_cls_token:
            return self.backbone(pixel_values=pixel_values).pooler_output.flatten(1)  # [B, F]

        height, width = pixels.shape[-2:]
        if height != self.image_size or width != self.image_size:
            raise ValueError(
                f"this ViT encoder expects {self.image_size}x{self.image_size} images, "
                f"got {height}x{width}"
            )
        extra = {"interpolate_pos_encoding": True} if self.image_size != self._native_size else {}
        output = self.backbone(pixel_values=pixel_values, **extra)
        if getattr(output, "pooler_output", None) is not None:
            return output.pooler_output  # [B, F]
        return output.last_hidden_state[:, 0]  # [B, F]: CLS token after the final layer norm


TEXT_POOLINGS = ("cls", "mean", "pooler")


class TextEncoder(nn.Module):
    """Token ids ``[B, L]`` → ``[B, F]`` from a BERT-like model's last hidden state: the CLS
    token (as BERT is pre-trained), the mean over real tokens, or the backbone's own
    ``pooler_output`` (BERT's dense+tanh on CLS; CLIP's text tower: its end-of-text token, as
    CLIP was trained). Mean pooling matters for randomly initialised encoders: their CLS outputs
    start nearly identical for every text, which stalls contrastive training for hundreds of
    steps."""

    def __init__(self, backbone: PreTrainedModel, pooling: str = "cls") -> None:
        super().__init__()
        if pooling not in TEXT_POOLINGS:
            raise ValueError(f"text pooling must be one of {TEXT_POOLINGS}, got {pooling!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.output_dim = int(backbone.config.hidden_size)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """``input_ids``, ``attention_mask`` [B, L] → features [B, F]."""
        output = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        if self.pooling == "pooler":
            return output.pooler_output  # [B, F]
        hidden = output.last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]  # [B, F]
        weights = attention_mask[..., None].to(hidden.dtype)  # [B, L, 1]
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # [B, F]
