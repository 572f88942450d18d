"""Save and load a ChestCLIP in Hugging Face layout, offline and without pickle.

<directory>/config.json         ChestCLIPConfig, including the encoders' transformers configs
<directory>/model.safetensors   the whole state dict
<directory>/tokenizer/          tokenizer.save_pretrained
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerBase

import chestclip
from chestclip.models.clip import ChestCLIP, ChestCLIPConfig
from chestclip.models.factory import build_clip
from chestclip.models.tokenization import load_tokenizer
from chestclip.utils.io import atomic_directory
from chestclip.utils.run_layout import RunLayout

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TOKENIZER_DIR = "tokenizer"


def save_clip(
    model: ChestCLIP, tokenizer: PreTrainedTokenizerBase, directory: str | os.PathLike
) -> Path:
    """Write ``model`` and ``tokenizer`` to ``directory`` atomically (all files or none)."""
    if model.config.image_encoder_config is None or model.config.text_encoder_config is None:
        raise ValueError("model.config lacks the encoder configs; build models with build_clip")
    directory = Path(directory)
    state = {
        name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()
    }
    metadata = {
        "format": "pt",
        "chestclip": chestclip.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    with atomic_directory(directory) as tmp:
        config_text = json.dumps(model.config.to_dict(), indent=2) + "\n"
        (tmp / CONFIG_NAME).write_text(config_text, encoding="utf-8")
        save_file(state, tmp / WEIGHTS_NAME, metadata=metadata)
        tokenizer.save_pretrained(tmp / TOKENIZER_DIR)
    return directory


def resolve_clip_dir(directory_or_run: str | os.PathLike) -> Path:
    """The directory written by :func:`save_clip`: ``directory_or_run`` itself or its ``clip/``."""
    path = Path(directory_or_run)
    in_run = RunLayout(path).clip
    for candidate in (path, in_run):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise FileNotFoundError(
        f"{path}: no {CONFIG_NAME} here or in {in_run.name}/ (not a saved ChestCLIP or run)"
    )


def load_clip(
    directory_or_run: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[ChestCLIP, PreTrainedTokenizerBase]:
    """Rebuild a saved ChestCLIP (eval mode, on ``device``) and its tokenizer, without the hub."""
    directory = resolve_clip_dir(directory_or_run)
    config_file = directory / CONFIG_NAME
    try:
        config = ChestCLIPConfig.from_dict(json.loads(config_file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{config_file}: not a valid ChestCLIP config ({error})") from None
    if config.image_encoder_config is None or config.text_encoder_config is None:
        raise ValueError(f"{config_file}: lacks the encoder configs needed to rebuild offline")

    model = build_clip(config)
    load_weights(model, directory / WEIGHTS_NAME, CONFIG_NAME)
    return model.to(device).eval(), load_tokenizer(directory / TOKENIZER_DIR)


def load_weights(module: torch.nn.Module, weights_file: Path, described_by: str) -> None:
    """Load a safetensors state dict into a module rebuilt from ``described_by`` (the file that
    records its architecture); a mismatch raises a one-line ValueError naming both files."""
    try:
        incompatible = module.load_state_dict(load_file(weights_file), strict=False)
    except RuntimeError as error:  # shape mismatches; the last line names the first one
        detail = str(error).strip().splitlines()[-1].strip()
        raise ValueError(f"{weights_file}: does not match {described_by} ({detail})") from None
    problems = [*incompatible.missing_keys, *incompatible.unexpected_keys]
    if problems:
        raise ValueError(
            f"{weights_file}: does not match {described_by} "
            f"({len(incompatible.missing_keys)} missing, {len(incompatible.unexpected_keys)} "
            f"unexpected tensors, e.g. {problems[0]})"
        )
