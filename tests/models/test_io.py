"""save_clip → load_clip: identical embeddings and config, offline, atomic, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from chestclip.models import (
    IMAGE_PRESETS,
    ChestCLIP,
    ChestCLIPConfig,
    build_clip,
    load_clip,
    save_clip,
)

IMAGE_SIZE = 64


def build_tiny(tokenizer: PreTrainedTokenizerFast, **overrides: object) -> ChestCLIP:
    torch.manual_seed(0)
    settings = {"image_encoder": "tiny-vit", "text_encoder": "tiny-bert", "embed_dim": 32}
    config = ChestCLIPConfig(image_size=IMAGE_SIZE, **{**settings, **overrides})  # type: ignore[arg-type]
    return build_clip(config, vocab_size=len(tokenizer)).eval()


def embeddings(
    model: ChestCLIP, tokenizer: PreTrainedTokenizerFast, reports: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.rand(3, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    tokens = tokenizer(reports[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(pixels, tokens["input_ids"], tokens["attention_mask"])
    return out.image_embeds, out.text_embeds


ROUND_TRIP_CASES = [{"image_encoder": preset} for preset in sorted(IMAGE_PRESETS)] + [
    {"projection": "mlp", "learnable_temperature": True, "attn_implementation": "eager"}
]


@pytest.mark.parametrize("overrides", ROUND_TRIP_CASES)
def test_round_trip_is_bit_identical_and_offline(
    tmp_path: Path,
    offline: None,
    tokenizer: PreTrainedTokenizerFast,
    reports: list[str],
    overrides: dict[str, object],
) -> None:
    model = build_tiny(tokenizer, **overrides)
    if model.config.learnable_temperature:
        with torch.no_grad():
            model.log_logit_scale.add_(0.5)  # a trained, non-initial value must survive
    save_clip(model, tokenizer, tmp_path / "clip")
    saved = sorted(path.name for path in (tmp_path / "clip").iterdir())
    assert saved == ["config.json", "model.safetensors", "tokenizer"]

    loaded, loaded_tokenizer = load_clip(tmp_path / "clip")
    assert not loaded.training
    assert loaded.config == model.config
    assert torch.equal(loaded.logit_scale, model.logit_scale)
    before = embeddings(model, tokenizer, reports)
    after = embeddings(loaded, loaded_tokenizer, reports)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])


def test_load_accepts_a_run_directory(
    tmp_path: Path, offline: None, tokenizer: PreTrainedTokenizerFast
) -> None:
    model = build_tiny(tokenizer)
    save_clip(model, tokenizer, tmp_path / "run" / "clip")
    loaded, _ = load_clip(tmp_path / "run")
    assert loaded.config == model.config


def test_saving_again_replaces_the_directory_whole(
    tmp_path: Path, tokenizer: PreTrainedTokenizerFast
) -> None:
    target = tmp_path / "clip"
    save_clip(build_tiny(tokenizer, embed_dim=16), tokenizer, target)
    (target / "stale.txt").write_text("from an older save")
    save_clip(build_tiny(tokenizer, embed_dim=24), tokenizer, target)
    assert not (target / "stale.txt").exists()
    assert json.loads((target / "config.json").read_text())["embed_dim"] == 24
    assert [p.name for p in tmp_path.iterdir()] == ["clip"]  # no temporary leftovers


def test_load_errors_name_the_file(tmp_path: Path, tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_clip(tmp_path)
    save_clip(build_tiny(tokenizer), tokenizer, tmp_path / "clip")
    config_file = tmp_path / "clip" / "config.json"
    config_file.write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json: not a valid ChestCLIP config"):
        load_clip(tmp_path / "clip")

    save_clip(build_tiny(tokenizer), tokenizer, tmp_path / "clip")
    config = json.loads(config_file.read_text())
    config["embed_dim"] = 16
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"model\.safetensors: does not match config\.json"):
        load_clip(tmp_path / "clip")
