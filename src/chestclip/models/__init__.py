"""CLIP for chest X-ray/report pairs: encoders, projection heads, multi-positive InfoNCE, save/load.

Typical use::

    config = ChestCLIPConfig(image_encoder="tiny-vit", text_encoder="tiny-bert", image_size=64)
    tokenizer = build_tokenizer(config.text_encoder, texts=reports)
    model = build_clip(config, vocab_size=len(tokenizer))
    out = model(pixels, input_ids, attention_mask)  # ClipOutput([B, D], [B, D], 1/τ)
    loss = ClipLoss()(out.image_embeds, out.text_embeds, out.logit_scale, study_ids, text_ids)
    save_clip(model, tokenizer, "run/clip")
"""

from chestclip.models.clip import ChestCLIP, ChestCLIPConfig, ClipOutput, make_projection
from chestclip.models.encoders import ImageEncoder, TextEncoder
from chestclip.models.factory import (
    build_clip,
    build_image_encoder,
    build_text_encoder,
    build_tokenizer,
    pretrained_image_encoder,
    read_image_normalisation,
    rebuild_image_encoder,
)
from chestclip.models.io import load_clip, resolve_clip_dir, save_clip
from chestclip.models.loss import ClipLoss, gather_with_grad, multi_positive_nce, positive_mask
from chestclip.models.presets import IMAGE_PRESETS, TEXT_PRESETS, ImagePreset, TextPreset
from chestclip.models.tokenization import load_tokenizer, train_wordpiece_tokenizer

__all__ = [
    "IMAGE_PRESETS",
    "TEXT_PRESETS",
    "ChestCLIP",
    "ChestCLIPConfig",
    "ClipLoss",
    "ClipOutput",
    "ImageEncoder",
    "ImagePreset",
    "TextEncoder",
    "TextPreset",
    "build_clip",
    "build_image_encoder",
    "build_text_encoder",
    "build_tokenizer",
    "gather_with_grad",
    "load_clip",
    "load_tokenizer",
    "make_projection",
    "multi_positive_nce",
    "positive_mask",
    "pretrained_image_encoder",
    "read_image_normalisation",
    "rebuild_image_encoder",
    "resolve_clip_dir",
    "save_clip",
    "train_wordpiece_tokenizer",
]
