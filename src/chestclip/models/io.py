"""Save and load a ChestCLIP in Hugging Face layout, offline and without pickle.

<directory>/config.json         ChestCLIPConfig, including the encoders' transformers configs
<directory>/model.safetensors   the whole state dict
<directory>/tokenizer/          tokenizer.save_pretrained

``ChestCLIP.save_pretrained``/``from_pretrained`` (the Hub mixin) write and read the first two
through :func:`write_clip_files`/:func:`load_clip_model`; ``load_clip`` adds the tokenizer.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
import transformers
from huggingface_hub import snapshot_download
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
HUB_REPO_ID = re.compile(r"[\w.-]+/[\w.-]+")  # ORG/NAME


def write_clip_files(model: ChestCLIP, directory: str | os.PathLike) -> None:
    """``config.json`` and ``model.safetensors`` of ``model`` into the existing ``directory``."""
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
    config_text = json.dumps(model.config.to_dict(), indent=2) + "\n"
    (directory / CONFIG_NAME).write_text(config_text, encoding="utf-8")
    save_file(state, directory / WEIGHTS_NAME, metadata=metadata)


def save_clip(
    model: ChestCLIP, tokenizer: PreTrainedTokenizerBase, directory: str | os.PathLike
) -> Path:
    """Write ``model`` and ``tokenizer`` to ``directory`` atomically (all files or none)."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        write_clip_files(model, tmp)
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


def pretrained_clip_dir(name_or_path: str | os.PathLike, **hub: Any) -> Path:
    """The local directory of a saved ChestCLIP: ``name_or_path`` (or its ``clip/``) when it
    exists, else a Hub repository id whose config and weights are fetched (``hub``: revision,
    token, cache_dir, local_files_only, force_download of ``snapshot_download``)."""
    path = Path(name_or_path)
    if path.exists() or not HUB_REPO_ID.fullmatch(str(name_or_path)):
        return resolve_clip_dir(path)
    try:
        snapshot = snapshot_download(
            str(name_or_path), allow_patterns=[CONFIG_NAME, WEIGHTS_NAME], **hub
        )
    except OSError as error:  # offline, not found, no access: huggingface_hub's are OSErrors
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise FileNotFoundError(
            f"{name_or_path}: no such directory, and not a reachable Hub repository ({first})"
        ) from None
    return resolve_clip_dir(snapshot)


def load_clip(
    directory_or_run: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[ChestCLIP, PreTrainedTokenizerBase]:
    """Rebuild a saved ChestCLIP (eval mode, on ``device``) and its tokenizer, without the hub."""
    directory = resolve_clip_dir(directory_or_run)
    model = ChestCLIP.from_pretrained(directory).to(device).eval()
    return model, load_tokenizer(directory / TOKENIZER_DIR)


def load_clip_model(directory: Path) -> ChestCLIP:
    """The ChestCLIP saved in ``directory`` (``config.json`` + ``model.safetensors``), eval mode."""
    config_file = directory / CONFIG_NAME
    try:
        config = ChestCLIPConfig.from_dict(json.loads(config_file.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, ValueError) as error:
        raise ValueError(f"{config_file}: not a valid ChestCLIP config ({error})") from None
    if config.image_encoder_config is None or config.text_encoder_config is None:
        raise ValueError(f"{config_file}: lacks the encoder configs needed to rebuild offline")

    model = build_clip(config)
    load_weights(model, directory / WEIGHTS_NAME, CONFIG_NAME)
    return model.eval()


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
