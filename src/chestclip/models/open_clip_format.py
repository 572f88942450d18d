"""open_clip and OpenAI CLIP checkpoints → transformers towers, by state dict (pure functions).

open_clip cannot be installed here (it needs torchvision), so its checkpoints are read as plain
state dicts and renamed into the transformers models that compute the same functions. Supported
tower layouts (keys after any ``module.`` prefix):

- OpenAI-style vision transformer: ``visual.conv1``, ``visual.class_embedding``,
  ``visual.positional_embedding``, ``visual.ln_pre``, ``visual.transformer.resblocks.N.*``,
  ``visual.ln_post``, ``visual.proj`` (OpenAI's CLIP ViT-B/32 and B/16, CheXzero, open_clip's
  ``ViT-*`` models) → ``CLIPVisionModel`` + a bias-free linear projection.
- timm vision transformer: ``visual.trunk.*`` of a plain timm ``VisionTransformer`` (class
  token, no pre-norm, token pooling) with ``visual.head.proj`` (BiomedCLIP's ViT-B/16) →
  ``ViTModel`` + a bias-free linear projection.
- OpenAI-style text transformer: ``token_embedding``, ``positional_embedding``,
  ``transformer.resblocks.N.*``, ``ln_final``, ``text_projection`` (also under ``text.``) →
  ``CLIPTextModel`` pooled at the end-of-text token, + a bias-free linear projection.
- Hugging Face text tower: ``text.transformer.*`` with ``text.proj`` (BiomedCLIP's PubMedBERT)
  → the model its open_clip config names, with open_clip's pooling and projection.

Anything else (SigLIP's ``logit_bias``, modified ResNets, ConvNeXt, attention pooling, timm MLP
heads, CoCa) is refused by name. Targets use transformers 4.x key names: ``from_pretrained``
renames them for the installed version.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor
from transformers import CLIPTextConfig, CLIPVisionConfig, PretrainedConfig, ViTConfig

from chestclip.errors import ChestClipError

OPENAI_HEAD_WIDTH = 64  # OpenAI and open_clip: attention heads = width // 64 unless configured
# open_clip's HF text poolers → TextEncoder pooling
HF_POOLERS = {"cls_last_hidden_state_pooler": "cls", "mean_pooler": "mean", "cls_pooler": "pooler"}


@dataclass
class Tower:
    """One converted tower: its transformers config and state dict (transformers 4.x names),
    its projection (``ChestCLIPConfig`` projection kind and state dict) and its pooling."""

    config: PretrainedConfig
    state: dict[str, Tensor]
    projection_kind: str
    projection: dict[str, Tensor]
    pooling: str
    consumed: set[str] = field(default_factory=set)  # checkpoint keys this tower used


class CheckpointFormatError(ChestClipError):
    """A checkpoint whose layout chestclip cannot convert; the message names the file."""


def strip_wrappers(state: Mapping[str, Any]) -> dict[str, Tensor]:
    """The model's state dict from an open_clip training checkpoint (``{"state_dict": ...}``,
    keys prefixed ``module.`` under DDP) or a bare state dict; non-tensor entries dropped."""
    if isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    return {
        key.removeprefix("module."): value
        for key, value in state.items()
        if isinstance(value, Tensor)
    }


def _resblocks(state: dict[str, Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for key in state if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def _resblock_state(
    state: dict[str, Tensor], source: str, target: str, layers: int
) -> tuple[dict[str, Tensor], set[str]]:
    """OpenAI ``ResidualAttentionBlock``s (``nn.MultiheadAttention`` with a packed in-proj,
    ``ln_1``, ``mlp.c_fc``/``c_proj``, ``ln_2``) → CLIP encoder layers."""
    renamed: dict[str, Tensor] = {}
    for i in range(layers):
        block, layer = f"{source}{i}.", f"{target}{i}."
        for kind in ("weight", "bias"):
            for name, value in zip(
                ("q_proj", "k_proj", "v_proj"),
                state[f"{block}attn.in_proj_{kind}"].chunk(3, dim=0),
                strict=True,
            ):
                renamed[f"{layer}self_attn.{name}.{kind}"] = value.clone()
            for old, new in (
                ("attn.out_proj", "self_attn.out_proj"),
                ("ln_1", "layer_norm1"),
                ("mlp.c_fc", "mlp.fc1"),
                ("mlp.c_proj", "mlp.fc2"),
                ("ln_2", "layer_norm2"),
            ):
                renamed[f"{layer}{new}.{kind}"] = state[f"{block}{old}.{kind}"]
    used = {key for key in state if key.startswith(source) and _block_index(key, source) < layers}
    return renamed, used


def _block_index(key: str, prefix: str) -> int:
    return int(key[len(prefix) :].split(".", 1)[0])


def _activation(model_cfg: Mapping[str, Any]) -> str:
    # OpenAI's models use QuickGELU; open_clip's own say so in their config ("quick_gelu")
    return "quick_gelu" if model_cfg.get("quick_gelu", True) else "gelu"


def openai_vision_tower(state: dict[str, Tensor], model_cfg: Mapping[str, Any]) -> Tower:
    """``visual.*`` of an OpenAI-style CLIP → ``CLIPVisionModel`` (pooled: post-LN CLS)."""
    vision_cfg = model_cfg.get("vision_cfg", {})
    conv = state["visual.conv1.weight"]  # [width, 3, patch, patch]
    width, channels, patch = conv.shape[0], conv.shape[1], conv.shape[-1]
    positions = state["visual.positional_embedding"].shape[0]
    grid = math.isqrt(positions - 1)
    if grid * grid != positions - 1:
        raise CheckpointFormatError(f"{positions} vision positions are not a square grid + CLS")
    layers = _resblocks(state, "visual.transformer.resblocks.")
    head_width = int(vision_cfg.get("head_width", OPENAI_HEAD_WIDTH))
    projection = state["visual.proj"]  # [width, embed_dim]: features @ proj
    config = CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=layers,
        num_attention_heads=width // head_width,
        num_channels=channels,
        image_size=grid * patch,
        patch_size=patch,
        projection_dim=projection.shape[1],
        hidden_act=_activation(model_cfg),
        layer_norm_eps=1e-5,
    )
    renamed, used = _resblock_state(
        state, "visual.transformer.resblocks.", "vision_model.encoder.layers.", layers
    )
    renamed.update(
        {
            "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
            "vision_model.embeddings.patch_embedding.weight": conv,
            "vision_model.embeddings.position_embedding.weight": state[
                "visual.positional_embedding"
            ],
        }
    )
    for old, new in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        for kind in ("weight", "bias"):
            renamed[f"vision_model.{new}.{kind}"] = state[f"visual.{old}.{kind}"]
    used |= {key for key in state if key.startswith(("visual.ln_", "visual.conv1"))}
    used |= {"visual.class_embedding", "visual.positional_embedding", "visual.proj"}
    return Tower(config, renamed, "linear", {"weight": projection.T.contiguous()}, "pooler", used)


def _timm_heads(width: int) -> int:
    # timm's ViTs: tiny/small/base/large keep 64-wide heads; huge and larger use 16 heads
    return 16 if width >= 1280 else max(1, width // OPENAI_HEAD_WIDTH)


def timm_vision_tower(state: dict[str, Tensor], model_cfg: Mapping[str, Any]) -> Tower:
    """``visual.trunk.*`` (a plain timm ViT) + ``visual.head.proj`` → ``ViTModel`` (CLS after the
    final LayerNorm, as timm's token pooling)."""
    vision_cfg = model_cfg.get("vision_cfg", {})
    trunk = "visual.trunk."
    unsupported = [
        key
        for key in state
        if key.startswith(tuple(f"{trunk}{part}" for part in ("norm_pre", "fc_norm", "reg_token")))
        or ".ls1." in key
        or key.startswith("visual.head.mlp")
    ]
    if (
        f"{trunk}cls_token" not in state
        or unsupported
        or vision_cfg.get("timm_pool")
        not in (
            None,
            "",
            "token",
        )
    ):
        detail = unsupported[0] if unsupported else "no class token or a custom pooling"
        raise CheckpointFormatError(f"unsupported timm vision tower ({detail})")
    if "visual.head.proj.bias" in state:
        raise CheckpointFormatError("unsupported timm projection with a bias (visual.head.proj)")
    patch_weight = state[f"{trunk}patch_embed.proj.weight"]  # [width, 3, patch, patch]
    width, channels, patch = patch_weight.shape[0], patch_weight.shape[1], patch_weight.shape[-1]
    positions = state[f"{trunk}pos_embed"].shape[1]
    grid = math.isqrt(positions - 1)
    layers = _resblocks(state, f"{trunk}blocks.")
    qkv_bias = f"{trunk}blocks.0.attn.qkv.bias" in state
    config = ViTConfig(
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=_timm_heads(width),
        intermediate_size=state[f"{trunk}blocks.0.mlp.fc1.weight"].shape[0],
        hidden_act="gelu",
        layer_norm_eps=1e-6,  # timm's ViT LayerNorms
        image_size=grid * patch,
        patch_size=patch,
        num_channels=channels,
        qkv_bias=qkv_bias,
    )
    renamed = {
        "embeddings.cls_token": state[f"{trunk}cls_token"],
        "embeddings.position_embeddings": state[f"{trunk}pos_embed"],
        "embeddings.patch_embeddings.projection.weight": patch_weight,
        "embeddings.patch_embeddings.projection.bias": state[f"{trunk}patch_embed.proj.bias"],
        "layernorm.weight": state[f"{trunk}norm.weight"],
        "layernorm.bias": state[f"{trunk}norm.bias"],
    }
    for i in range(layers):
        block, layer = f"{trunk}blocks.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias") if qkv_bias else ("weight",):
            for name, value in zip(
                ("query", "key", "value"),
                state[f"{block}attn.qkv.{kind}"].chunk(3, dim=0),
                strict=True,
            ):
                renamed[f"{layer}attention.attention.{name}.{kind}"] = value.clone()
        for kind in ("weight", "bias"):
            for old, new in (
                ("attn.proj", "attention.output.dense"),
                ("norm1", "layernorm_before"),
                ("norm2", "layernorm_after"),
                ("mlp.fc1", "intermediate.dense"),
                ("mlp.fc2", "output.dense"),
            ):
                renamed[f"{layer}{new}.{kind}"] = state[f"{block}{old}.{kind}"]
    used = {key for key in state if key.startswith((trunk, "visual.head."))}
    projection = {"weight": state["visual.head.proj.weight"]}
    return Tower(config, renamed, "linear", projection, "cls", used)


def openai_text_tower(
    state: dict[str, Tensor], model_cfg: Mapping[str, Any], prefix: str = ""
) -> Tower:
    """An OpenAI-style text transformer (``{prefix}token_embedding`` ...) → ``CLIPTextModel``,
    pooled at the end-of-text token (OpenAI's vocabulary ends with it: id ``vocab - 1``)."""
    text_cfg = model_cfg.get("text_cfg", {})
    tokens = state[f"{prefix}token_embedding.weight"]  # [vocab, width]
    vocab, width = tokens.shape
    blocks = f"{prefix}transformer.resblocks."
    layers = _resblocks(state, blocks)
    projection = state[f"{prefix}text_projection"]  # [width, embed_dim]
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=width,
        intermediate_size=state[f"{blocks}0.mlp.c_fc.weight"].shape[0],
        num_hidden_layers=layers,
        num_attention_heads=int(text_cfg.get("heads", width // OPENAI_HEAD_WIDTH)),
        max_position_embeddings=state[f"{prefix}positional_embedding"].shape[0],
        projection_dim=projection.shape[1],
        hidden_act=_activation(model_cfg),
        layer_norm_eps=1e-5,
        bos_token_id=vocab - 2,
        eos_token_id=vocab - 1,
        pad_token_id=0,
    )
    renamed, used = _resblock_state(state, blocks, "text_model.encoder.layers.", layers)
    renamed["text_model.embeddings.token_embedding.weight"] = tokens
    renamed["text_model.embeddings.position_embedding.weight"] = state[
        f"{prefix}positional_embedding"
    ]
    for kind in ("weight", "bias"):
        renamed[f"text_model.final_layer_norm.{kind}"] = state[f"{prefix}ln_final.{kind}"]
    used |= {
        f"{prefix}{name}"
        for name in (
            "token_embedding.weight",
            "positional_embedding",
            "ln_final.weight",
            "ln_final.bias",
            "text_projection",
            "attn_mask",
        )
    }
    return Tower(config, renamed, "linear", {"weight": projection.T.contiguous()}, "pooler", used)


def hf_text_tower(
    state: dict[str, Tensor], model_cfg: Mapping[str, Any], text_config: PretrainedConfig
) -> Tower:
    """``text.transformer.*`` (a transformers model, config ``text_config``) with open_clip's
    ``text.proj`` (linear or bias-free MLP) and pooler."""
    text_cfg = model_cfg.get("text_cfg", {})
    pooler = text_cfg.get("hf_pooler_type", "mean_pooler")
    if pooler not in HF_POOLERS:
        raise CheckpointFormatError(f"unsupported open_clip text pooler {pooler!r}")
    proj_type = text_cfg.get("hf_proj_type", "mlp")
    prefix = "text.transformer."
    renamed = {
        key.removeprefix(prefix): value
        for key, value in state.items()
        if key.startswith(prefix) and not key.endswith("position_ids")
    }
    projections = {"linear": "linear", "mlp": "open-clip-mlp"}
    biased = any(key.startswith("text.proj") and key.endswith("bias") for key in state)
    if proj_type not in projections or biased:
        raise CheckpointFormatError(f"unsupported open_clip text projection {proj_type!r}")
    projection = {
        key.removeprefix("text.proj."): value
        for key, value in state.items()
        if key.startswith("text.proj.")
    }
    used = {key for key in state if key.startswith(("text.transformer.", "text.proj"))}
    return Tower(text_config, renamed, projections[proj_type], projection, HF_POOLERS[pooler], used)
