"""``model.init_from``: a pretrained dual encoder read and converted into chestclip's parts.

Sources (a Hugging Face name, a local path, or ``hf-hub:ORG/NAME`` for open_clip repositories):

- a transformers ``CLIPModel`` (``config.json`` with ``model_type: clip``): ``CLIPVisionModel`` and
  ``CLIPTextModel`` towers, their projections and logit scale, pooled as CLIP pools them;
- a ``VisionTextDualEncoderModel`` (``model_type: vision-text-dual-encoder``): any vision and
  text towers with their pooler outputs, as that model uses them;
- an open_clip checkpoint: a file (``.bin``, ``.pt``, ``.pth``, ``.safetensors``) or a directory
  with ``open_clip_pytorch_model.bin``/``open_clip_model.safetensors`` and, beside it,
  ``open_clip_config.json`` (BiomedCLIP's ViT-B/16 + PubMedBERT, CheXzero-style OpenAI ViT-B/32;
  layouts in :mod:`chestclip.models.open_clip_format`).

The tokenizer comes from the source (its directory's tokenizer files) or, for open_clip's Hugging
Face text towers, from ``text_cfg.hf_tokenizer_name``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor
from transformers import (
    MODEL_MAPPING,
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from chestclip.errors import ChestClipError
from chestclip.models.factory import attention_kwargs, read_image_normalisation
from chestclip.models.open_clip_format import (
    CheckpointFormatError,
    Tower,
    hf_text_tower,
    openai_text_tower,
    openai_vision_tower,
    strip_wrappers,
    timm_vision_tower,
)

logger = logging.getLogger(__name__)

HF_DUAL_ENCODERS = ("clip", "vision-text-dual-encoder")
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
OPEN_CLIP_CONFIG = "open_clip_config.json"
HUB_PREFIX = "hf-hub:"
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.txt", "vocab.json")


@dataclass
class PretrainedDualEncoder:
    """Both towers (transformers models with their weights), their projections (kind and state
    dict), pooling and image normalisation, and the learned log logit scale."""

    image_backbone: PreTrainedModel
    text_backbone: PreTrainedModel
    image_projection: tuple[str, dict[str, Tensor]]
    text_projection: tuple[str, dict[str, Tensor]]
    image_pooling: str
    text_pooling: str
    image_mean: list[float]
    image_std: list[float]
    log_logit_scale: float | None

    @property
    def embed_dim(self) -> int:
        kind, state = self.image_projection
        last = state["weight"] if kind == "linear" else state[sorted(state)[-1]]
        return int(last.shape[0])


def load_dual_encoder(source: str, attn_implementation: str = "sdpa") -> PretrainedDualEncoder:
    """Read and convert ``source`` (see the module docstring); errors are one line."""
    local = _local_path(source)
    if _is_open_clip(local):
        return _open_clip(source, *_open_clip_files(source, local), attn_implementation)
    try:
        config = AutoConfig.from_pretrained(str(local))
    except (OSError, ValueError) as error:
        raise ChestClipError(
            f"{source}: not a Hugging Face dual encoder nor an open_clip checkpoint "
            f"({str(error).strip().splitlines()[0]})"
        ) from None
    if config.model_type not in HF_DUAL_ENCODERS:
        raise ChestClipError(
            f"{source}: model_type {config.model_type!r} cannot start a ChestCLIP; supported: "
            f"{', '.join(HF_DUAL_ENCODERS)} and open_clip checkpoints"
        )
    return _hf_dual_encoder(str(local), attn_implementation)


def pretrained_tokenizer(source: str) -> PreTrainedTokenizerBase:
    """The tokenizer that goes with ``init_from=source`` (one-line error when there is none)."""
    local = _local_path(source)
    if _is_open_clip(local):
        tokenizer = _open_clip_tokenizer(*_open_clip_files(source, local))
    else:
        tokenizer = _find_tokenizer(local)
    if tokenizer is None:
        raise ChestClipError(
            f"{source}: no tokenizer found with this checkpoint; save its text tower's tokenizer "
            "(tokenizer.save_pretrained) in the checkpoint's directory"
        )
    return tokenizer


def _local_path(source: str) -> Path:
    """``source`` as a local path; ``hf-hub:ORG/NAME`` is downloaded (or found in the cache)."""
    if not source.startswith(HUB_PREFIX):
        return Path(source).expanduser()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source.removeprefix(HUB_PREFIX)))
    except Exception as error:  # offline, unknown repository, no network: all one line
        raise ChestClipError(f"{source}: cannot fetch it from the hub ({error})") from None


def _open_clip_weights(directory: Path) -> Path | None:
    return next((directory / n for n in OPEN_CLIP_WEIGHTS if (directory / n).is_file()), None)


def _is_open_clip(local: Path) -> bool:
    """A checkpoint file, or a directory in open_clip's layout (weights or its config)."""
    return (
        local.is_file() or (local / OPEN_CLIP_CONFIG).is_file() or bool(_open_clip_weights(local))
    )


def _open_clip_files(source: str, local: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint file and the open_clip config beside it ({} when there is none)."""
    checkpoint = local if local.is_file() else _open_clip_weights(local)
    if checkpoint is None:
        raise ChestClipError(f"{source}: no {' or '.join(OPEN_CLIP_WEIGHTS)} in this directory")
    config_file = checkpoint.parent / OPEN_CLIP_CONFIG
    return checkpoint, json.loads(config_file.read_text()) if config_file.is_file() else {}


def _open_clip_tokenizer(
    checkpoint: Path, settings: dict[str, Any]
) -> PreTrainedTokenizerBase | None:
    """The tokenizer saved beside the checkpoint, else the one its config names."""
    model_cfg = settings.get("model_cfg", settings)
    return _find_tokenizer(checkpoint.parent) or _hub_tokenizer(model_cfg)


def _hf_dual_encoder(location: str, attn: str) -> PretrainedDualEncoder:
    model = AutoModel.from_pretrained(location, attn_implementation=attn)
    mean, std = read_image_normalisation(location, model.vision_model)
    return PretrainedDualEncoder(
        image_backbone=model.vision_model,
        text_backbone=model.text_model,
        image_projection=("linear", _detached(model.visual_projection.state_dict())),
        text_projection=("linear", _detached(model.text_projection.state_dict())),
        image_pooling="pooler",
        text_pooling="pooler",
        image_mean=mean,
        image_std=std,
        log_logit_scale=float(model.logit_scale.detach()),
    )


def _open_clip(
    source: str, checkpoint: Path, settings: dict[str, Any], attn: str
) -> PretrainedDualEncoder:
    model_cfg = settings.get("model_cfg", settings)
    tokenizer = _open_clip_tokenizer(checkpoint, settings)
    try:
        state = strip_wrappers(_read_state(checkpoint))
        image, text = _towers(state, model_cfg)
        leftover = sorted(set(state) - image.consumed - text.consumed - {"logit_scale"})
        if leftover:
            raise CheckpointFormatError(
                f"{len(leftover)} tensors of an unsupported layout, e.g. {leftover[0]}"
            )
    except CheckpointFormatError as error:
        raise CheckpointFormatError(f"{checkpoint}: {error}") from None
    except KeyError as error:
        raise CheckpointFormatError(f"{checkpoint}: incomplete tower, missing {error}") from None
    if tokenizer is not None and text.config.model_type == "clip_text_model":
        end = tokenizer.eos_token_id
        end = tokenizer.sep_token_id if end is None else end
        if end is not None:
            text.config.eos_token_id = end  # CLIP's text tower pools at the end-of-text token
    preprocess = settings.get("preprocess_cfg", {})
    if "mean" not in preprocess:
        logger.warning("%s: no preprocess_cfg mean/std; using OpenAI CLIP's", source)
    scale = state.get("logit_scale")
    return PretrainedDualEncoder(
        image_backbone=_backbone(image, attn, str(checkpoint)),
        text_backbone=_backbone(text, attn, str(checkpoint)),
        image_projection=(image.projection_kind, image.projection),
        text_projection=(text.projection_kind, text.projection),
        image_pooling=image.pooling,
        text_pooling=text.pooling,
        image_mean=[float(v) for v in preprocess.get("mean", OPENAI_CLIP_MEAN)],
        image_std=[float(v) for v in preprocess.get("std", OPENAI_CLIP_STD)],
        log_logit_scale=None if scale is None else float(scale),
    )


def _read_state(checkpoint: Path) -> dict[str, Any]:
    try:
        if checkpoint.suffix == ".safetensors":
            return load_file(checkpoint)
        return torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # pickles with code, TorchScript archives, truncated files
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointFormatError(
            f"{checkpoint}: not a readable state dict ({detail}); save model.state_dict() with "
            "torch.save or safetensors"
        ) from None


def _towers(state: dict[str, Tensor], model_cfg: dict[str, Any]) -> tuple[Tower, Tower]:
    if "logit_bias" in state:
        raise CheckpointFormatError("a SigLIP-style model (logit_bias): not supported")
    if "visual.trunk.cls_token" in state or any(k.startswith("visual.trunk.") for k in state):
        image = timm_vision_tower(state, model_cfg)
    elif "visual.conv1.weight" in state and "visual.transformer.resblocks.0.ln_1.weight" in state:
        image = openai_vision_tower(state, model_cfg)
    else:
        raise CheckpointFormatError("unsupported vision tower (neither timm ViT nor OpenAI ViT)")
    if "text.token_embedding.weight" in state:
        text = openai_text_tower(state, model_cfg, prefix="text.")
    elif any(key.startswith("text.transformer.") for key in state):
        text = hf_text_tower(state, model_cfg, _hf_text_config(model_cfg))
    elif "token_embedding.weight" in state:
        text = openai_text_tower(state, model_cfg)
    else:
        raise CheckpointFormatError("unsupported text tower")
    return image, text


def _hf_text_config(model_cfg: dict[str, Any]) -> PretrainedConfig:
    name = model_cfg.get("text_cfg", {}).get("hf_model_name")
    if not name:
        raise CheckpointFormatError(
            f"a Hugging Face text tower needs {OPEN_CLIP_CONFIG} (text_cfg.hf_model_name)"
        )
    try:
        return AutoConfig.from_pretrained(name)
    except (OSError, ValueError):
        raise CheckpointFormatError(
            f"the text tower's config {name!r} is not available here: download it, or point "
            f"text_cfg.hf_model_name in {OPEN_CLIP_CONFIG} to a local directory"
        ) from None


def _hub_tokenizer(model_cfg: dict[str, Any]) -> PreTrainedTokenizerBase | None:
    name = model_cfg.get("text_cfg", {}).get("hf_tokenizer_name")
    if not name:
        return None
    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError):
        return None


def _find_tokenizer(directory: Path) -> PreTrainedTokenizerBase | None:
    """The tokenizer saved in ``directory`` (or a hub name's), else None."""
    if directory.is_dir() and not any((directory / name).is_file() for name in TOKENIZER_FILES):
        return None
    try:
        return AutoTokenizer.from_pretrained(str(directory))
    except (OSError, ValueError, TypeError):
        return None


def _backbone(tower: Tower, attn: str, described_by: str) -> PreTrainedModel:
    """The tower's transformers model with its converted weights; a mismatch is one line."""
    model_class = MODEL_MAPPING[type(tower.config)]
    backbone, info = model_class.from_pretrained(
        None,
        config=tower.config,
        state_dict=tower.state,
        output_loading_info=True,
        **attention_kwargs(tower.config, attn),
    )
    missing = [
        key
        for key in info["missing_keys"]
        if not (key.startswith("pooler.") and tower.pooling != "pooler")
    ]
    problems = sorted(missing) + sorted(info["unexpected_keys"]) + sorted(info["mismatched_keys"])
    if problems:
        raise CheckpointFormatError(
            f"{described_by}: the converted {tower.config.model_type} tower does not match its "
            f"config ({len(problems)} tensors, e.g. {problems[0]})"
        )
    return backbone.eval()


def _detached(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {key: value.detach().clone() for key, value in state.items()}
