"""Registry of tiny, randomly initialised encoder presets for tests, demos and CPU smoke runs.

A preset is a transformers config (never weights), so building one needs no download; its random
weights come from the caller's torch seed. Any other encoder name is a Hugging Face name or a local
directory and loads through ``from_pretrained``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from transformers import BertConfig, PretrainedConfig, ResNetConfig, ViTConfig
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
)


@dataclass(frozen=True)
class ImagePreset:
    """A vision backbone config for a given image size, with the normalisation it expects."""

    make_config: Callable[[int], PretrainedConfig]  # image_size -> config
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class TextPreset:
    """A text backbone config for a given vocabulary size (that of a tokenizer trained for it)."""

    make_config: Callable[[int], PretrainedConfig]  # vocab_size -> config


def _tiny_vit(image_size: int) -> ViTConfig:
    return ViTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        image_size=image_size,
        patch_size=8,  # an 8x8 token grid at 64 px: heat maps worth looking at
    )


def _tiny_resnet(image_size: int) -> ResNetConfig:
    # CNNs take any input size; the argument is part of the common preset signature.
    del image_size
    return ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic")


def _tiny_bert(vocab_size: int) -> BertConfig:
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
    )


IMAGE_PRESETS: dict[str, ImagePreset] = {
    # transformers' ViT image processors use mean = std = 0.5; ResNets use ImageNet statistics.
    "tiny-vit": ImagePreset(_tiny_vit, tuple(IMAGENET_STANDARD_MEAN), tuple(IMAGENET_STANDARD_STD)),
    "tiny-resnet": ImagePreset(
        _tiny_resnet, tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD)
    ),
}

TEXT_PRESETS: dict[str, TextPreset] = {
    "tiny-bert": TextPreset(_tiny_bert),
}
