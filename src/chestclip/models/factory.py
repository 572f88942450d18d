"""Build encoders, tokenizers and whole CLIP models from names, paths, presets or saved configs.

This is the only place in ``chestclip.models`` that reads files (through transformers'
``from_pretrained``): the modules it returns take plain tensors and arguments.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from transformers import (
    CONFIG_MAPPING,
    MODEL_MAPPING,
    AutoConfig,
    AutoModel,
    ImageProcessingMixin,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
)

from chestclip.errors import ChestClipError
from chestclip.models.clip import ChestCLIP, ChestCLIPConfig
from chestclip.models.encoders import ImageEncoder, TextEncoder, has_cls_token
from chestclip.models.presets import IMAGE_PRESETS, TEXT_PRESETS
from chestclip.models.tokenization import load_tokenizer, train_wordpiece_tokenizer

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 224


def _model_class(config: PretrainedConfig) -> type[PreTrainedModel]:
    try:
        return MODEL_MAPPING[type(config)]
    except KeyError:
        raise ValueError(
            f"transformers has no AutoModel for model_type {config.model_type!r}"
        ) from None


def attention_kwargs(config: PretrainedConfig, attn_implementation: str) -> dict[str, Any]:
    """``from_pretrained``/``from_config`` arguments for the attention kernel of ``config``."""
    # Convolutional backbones have no attention at all and transformers refuses "sdpa" for them;
    # "eager" is the one implementation every model accepts.
    if attn_implementation == "sdpa" and not _model_class(config)._supports_sdpa:
        attn_implementation = "eager"
    return {"attn_implementation": attn_implementation}


def _drop_unused_pooler(backbone: PreTrainedModel) -> PreTrainedModel:
    """Remove a pooler whose output the encoders never use (they take the CLS token).

    Its parameters would get no gradient, which DistributedDataParallel rejects by default.
    """
    pooler = getattr(backbone, "pooler", None)
    if isinstance(pooler, nn.Module) and any(True for _ in pooler.parameters()):
        backbone.pooler = None
    return backbone


def _config_from_dict(values: dict[str, Any]) -> PretrainedConfig:
    """A transformers config from its ``to_dict()``: no hub, no files."""
    model_type = values.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ValueError(f"saved encoder config has unknown model_type {model_type!r}")
    return CONFIG_MAPPING[model_type].from_dict(values)


def _per_channel(value: float | Sequence[float], channels: int) -> list[float]:
    return [float(value)] * channels if isinstance(value, int | float) else list(value)


def read_image_normalisation(
    name_or_path: str | os.PathLike, backbone: PreTrainedModel
) -> tuple[list[float], list[float]]:
    """``(mean, std)`` from the checkpoint's ``preprocessor_config.json``, else a default by kind.

    The default is OpenAI's statistics for CLIP vision towers, transformers' ViT convention
    (0.5, 0.5) for other CLS-token models and the ImageNet statistics otherwise; it is logged,
    because wrong statistics silently degrade pretrained features.
    """
    channels = int(backbone.config.num_channels)
    try:
        processor, _ = ImageProcessingMixin.get_image_processor_dict(str(name_or_path))
    except OSError:
        processor = {}
    if processor.get("image_mean") is not None and processor.get("image_std") is not None:
        return (
            _per_channel(processor["image_mean"], channels),
            _per_channel(processor["image_std"], channels),
        )
    if backbone.config.model_type == "clip_vision_model":
        mean, std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    elif has_cls_token(backbone):
        mean, std = IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD
    else:
        mean, std = IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    logger.warning(
        "%s has no image mean/std in a preprocessor config; using mean=%s std=%s",
        name_or_path,
        list(mean),
        list(std),
    )
    return list(mean), list(std)


def _native_image_size(config: PretrainedConfig) -> int:
    size = getattr(config, "image_size", None)
    return size if isinstance(size, int) else DEFAULT_IMAGE_SIZE


def build_image_encoder(
    name_or_path: str | os.PathLike,
    attn_implementation: str = "sdpa",
    image_size: int | None = None,
    pooling: str = "cls",
) -> ImageEncoder:
    """An image encoder from a preset name (random weights), a Hugging Face name or a directory.

    Pretrained checkpoints keep their weights and mean/std; ``image_size`` defaults to the
    checkpoint's (224 for presets), and a different size interpolates ViT position embeddings.
    """
    name = str(name_or_path)
    if name in IMAGE_PRESETS:
        preset = IMAGE_PRESETS[name]
        size = DEFAULT_IMAGE_SIZE if image_size is None else image_size
        backbone = _random_backbone(preset.make_config(size), attn_implementation)
        mean, std = list(preset.mean), list(preset.std)
    else:
        backbone = _pretrained_backbone(name, attn_implementation, "image")
        mean, std = read_image_normalisation(name, backbone)
        size = _native_image_size(backbone.config) if image_size is None else image_size
    return _image_encoder(backbone, mean, std, size, pooling)


def pretrained_image_encoder(
    init_from: str, attn_implementation: str = "sdpa", image_size: int | None = None
) -> ImageEncoder:
    """The image tower of the dual encoder ``init_from`` (see ``chestclip.models.init_from``)."""
    from chestclip.models.init_from import load_dual_encoder

    dual = load_dual_encoder(init_from, attn_implementation)
    backbone = dual.image_backbone
    size = _native_image_size(backbone.config) if image_size is None else image_size
    return _image_encoder(backbone, dual.image_mean, dual.image_std, size, dual.image_pooling)


def rebuild_image_encoder(
    encoder_config: dict[str, Any],
    mean: Sequence[float],
    std: Sequence[float],
    image_size: int,
    attn_implementation: str = "sdpa",
    pooling: str = "cls",
) -> ImageEncoder:
    """A saved image encoder's architecture (its transformers ``config.to_dict()``) with random
    weights, offline, ready for ``load_state_dict``."""
    backbone = _random_backbone(_config_from_dict(encoder_config), attn_implementation)
    return _image_encoder(backbone, mean, std, image_size, pooling)


def build_text_encoder(
    name_or_path: str | os.PathLike,
    attn_implementation: str = "sdpa",
    vocab_size: int | None = None,
    pooling: str = "cls",
) -> TextEncoder:
    """A text encoder from a preset name (random weights), a Hugging Face name or a directory.

    Presets need ``vocab_size`` (``len(tokenizer)`` of the tokenizer trained for them); for a
    pretrained model it is only checked against the model's embedding table.
    """
    name = str(name_or_path)
    if name in TEXT_PRESETS:
        if vocab_size is None:
            raise ValueError(f"text preset {name!r} needs vocab_size (len of its tokenizer)")
        backbone = _random_backbone(TEXT_PRESETS[name].make_config(vocab_size), attn_implementation)
    else:
        backbone = _pretrained_backbone(name, attn_implementation, "text")
        model_vocab = backbone.config.vocab_size
        if vocab_size is not None and vocab_size > model_vocab:
            raise ValueError(
                f"tokenizer has {vocab_size} tokens but {name} embeds only {model_vocab}"
            )
    return _text_encoder(backbone, pooling)


def build_tokenizer(
    text_encoder: str | os.PathLike,
    texts: Iterable[str] | None = None,
    vocab_size: int = 2000,
    init_from: str | None = None,
) -> PreTrainedTokenizerBase:
    """A text encoder's tokenizer: its own when pretrained (that of the dual encoder
    ``init_from`` when given), else WordPiece trained on ``texts``."""
    if init_from is not None:
        from chestclip.models.init_from import pretrained_tokenizer

        return pretrained_tokenizer(init_from)
    name = str(text_encoder)
    if name not in TEXT_PRESETS:
        return load_tokenizer(name)
    if texts is None:
        raise ValueError(f"text preset {name!r} has no tokenizer: pass texts to train one")
    return train_wordpiece_tokenizer(texts, vocab_size=vocab_size)


def build_clip(config: ChestCLIPConfig, vocab_size: int | None = None) -> ChestCLIP:
    """A ChestCLIP whose ``.config`` records the encoders' transformers configs and mean/std.

    When ``config`` already holds those (a saved model's config), the encoders are rebuilt from
    them with random weights, offline, ready for ``load_state_dict``; otherwise they come from
    ``config.init_from`` (a pretrained dual encoder, converted) or from
    ``build_image_encoder``/``build_text_encoder``. ``vocab_size`` sizes a text preset.
    """
    attn = config.attn_implementation
    if config.image_encoder_config is None and config.init_from is not None:
        return _clip_from_pretrained(config)
    if config.image_encoder_config is None:
        image_encoder = build_image_encoder(
            config.image_encoder, attn, config.image_size, config.image_pooling
        )
    else:
        if config.image_mean is None or config.image_std is None:
            raise ValueError("a config with image_encoder_config also needs image_mean/image_std")
        image_encoder = rebuild_image_encoder(
            config.image_encoder_config,
            config.image_mean,
            config.image_std,
            config.image_size,
            attn,
            config.image_pooling,
        )
    if config.text_encoder_config is None:
        text_encoder = build_text_encoder(
            config.text_encoder, attn, vocab_size, config.text_pooling
        )
    else:
        text_encoder = _text_encoder(
            _random_backbone(_config_from_dict(config.text_encoder_config), attn),
            config.text_pooling,
        )
    return _assemble(config, image_encoder, text_encoder)


def _clip_from_pretrained(config: ChestCLIPConfig) -> ChestCLIP:
    """A ChestCLIP starting from the dual encoder ``config.init_from``: its towers, projections
    and pooling (they decide ``embed_dim``); a learnable temperature starts at its logit scale."""
    from chestclip.models.init_from import load_dual_encoder

    dual = load_dual_encoder(config.init_from, config.attn_implementation)
    image_encoder = _image_encoder(
        dual.image_backbone, dual.image_mean, dual.image_std, config.image_size, dual.image_pooling
    )
    text_encoder = _text_encoder(dual.text_backbone, dual.text_pooling)
    towers = dataclasses.replace(
        config,
        image_encoder=f"{config.init_from} (image tower)",
        text_encoder=f"{config.init_from} (text tower)",
        embed_dim=dual.embed_dim,
        image_projection_kind=dual.image_projection[0],
        text_projection_kind=dual.text_projection[0],
        image_pooling=dual.image_pooling,
        text_pooling=dual.text_pooling,
    )
    model = _assemble(towers, image_encoder, text_encoder)
    model.image_projection.load_state_dict(dual.image_projection[1])
    model.text_projection.load_state_dict(dual.text_projection[1])
    if config.learnable_temperature and dual.log_logit_scale is not None:
        with torch.no_grad():
            model.log_logit_scale.fill_(min(dual.log_logit_scale, math.log(config.max_logit_scale)))
    logger.info("initialised from %s", config.init_from)
    return model


def _assemble(
    config: ChestCLIPConfig, image_encoder: ImageEncoder, text_encoder: TextEncoder
) -> ChestCLIP:
    """The ChestCLIP of two built encoders, its config completed with their configs."""
    max_positions = getattr(text_encoder.backbone.config, "max_position_embeddings", None)
    if max_positions is not None and config.max_text_length > max_positions:
        raise ChestClipError(
            f"max_text_length {config.max_text_length} exceeds the text encoder's "
            f"{max_positions} positions: set model.max_text_length={max_positions} or less"
        )
    resolved = dataclasses.replace(
        config,
        image_size=image_encoder.image_size,
        image_encoder_config=image_encoder.backbone.config.to_dict(),
        text_encoder_config=text_encoder.backbone.config.to_dict(),
        image_mean=list(image_encoder.image_mean),
        image_std=list(image_encoder.image_std),
    )
    return ChestCLIP(resolved, image_encoder, text_encoder)


def is_dual_encoder(config: PretrainedConfig) -> bool:
    """A config with both a vision and a text tower (CLIP, SigLIP, a dual encoder...)."""
    return getattr(config, "vision_config", None) is not None and hasattr(config, "text_config")


def _pretrained_backbone(name: str, attn_implementation: str, role: str) -> PreTrainedModel:
    """Weights from a Hugging Face name or a local directory; a whole dual encoder is refused
    with a pointer to ``model.init_from``."""
    config = AutoConfig.from_pretrained(name)
    if is_dual_encoder(config):
        raise ChestClipError(
            f"{name}: a full {config.model_type} dual encoder, not an {role} encoder alone; start "
            f"from it with model.init_from={name} (both towers and their projections)"
        )
    return AutoModel.from_pretrained(
        name, config=config, **attention_kwargs(config, attn_implementation)
    )


def _random_backbone(config: PretrainedConfig, attn_implementation: str) -> PreTrainedModel:
    """Random weights (from the caller's torch seed): presets, or a saved model before loading."""
    return AutoModel.from_config(config, **attention_kwargs(config, attn_implementation))


def _image_encoder(
    backbone: PreTrainedModel,
    mean: Sequence[float],
    std: Sequence[float],
    image_size: int,
    pooling: str = "cls",
) -> ImageEncoder:
    if has_cls_token(backbone) and pooling == "cls":
        _drop_unused_pooler(backbone)
    # from_pretrained returns eval mode; a built encoder trains (dropout on) unless told otherwise
    return ImageEncoder(backbone, mean, std, image_size, pooling).train()


def _text_encoder(backbone: PreTrainedModel, pooling: str) -> TextEncoder:
    backbone = backbone if pooling == "pooler" else _drop_unused_pooler(backbone)
    return TextEncoder(backbone, pooling).train()
