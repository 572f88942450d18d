"""ChestCLIP: every preset pair yields unit-norm [B, D] embeddings; temperature; config checks."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from chestclip.models import (
    IMAGE_PRESETS,
    TEXT_PRESETS,
    ChestCLIP,
    ChestCLIPConfig,
    ClipLoss,
    build_clip,
)

IMAGE_SIZE = 64


def tiny_clip(tokenizer: PreTrainedTokenizerFast, **overrides: object) -> ChestCLIP:
    settings = {"image_encoder": "tiny-vit", "text_encoder": "tiny-bert", "embed_dim": 32}
    config = ChestCLIPConfig(image_size=IMAGE_SIZE, **{**settings, **overrides})  # type: ignore[arg-type]
    return build_clip(config, vocab_size=len(tokenizer))


@pytest.mark.parametrize("text_preset", sorted(TEXT_PRESETS))
@pytest.mark.parametrize("image_preset", sorted(IMAGE_PRESETS))
@pytest.mark.parametrize("projection", ["linear", "mlp"])
def test_every_preset_gives_unit_norm_embeddings_and_trains_every_parameter(
    image_preset: str,
    text_preset: str,
    projection: str,
    tokenizer: PreTrainedTokenizerFast,
    reports: list[str],
) -> None:
    torch.manual_seed(0)
    model = tiny_clip(
        tokenizer, image_encoder=image_preset, text_encoder=text_preset, projection=projection
    )
    tokens = tokenizer(reports[:4], padding=True, return_tensors="pt")
    out = model(
        torch.rand(4, 1, IMAGE_SIZE, IMAGE_SIZE), tokens["input_ids"], tokens["attention_mask"]
    )

    assert out.image_embeds.shape == out.text_embeds.shape == (4, 32)
    ones = torch.ones(4)
    torch.testing.assert_close(out.image_embeds.norm(dim=-1), ones)
    torch.testing.assert_close(out.text_embeds.norm(dim=-1), ones)
    # Every parameter gets a gradient, so DDP needs no find_unused_parameters.
    ClipLoss()(*out).backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_build_clip_records_what_rebuilding_needs(tokenizer: PreTrainedTokenizerFast) -> None:
    config = ChestCLIPConfig(image_encoder="tiny-resnet", text_encoder="tiny-bert", image_size=64)
    model = build_clip(config, vocab_size=len(tokenizer))
    assert config.image_encoder_config is None  # the caller's config is left alone
    assert model.config.image_encoder_config["model_type"] == "resnet"
    assert model.config.text_encoder_config["vocab_size"] == len(tokenizer)
    assert model.config.image_mean == list(IMAGE_PRESETS["tiny-resnet"].mean)
    assert model.config.embed_dim == 512


def test_fixed_temperature_is_an_exact_buffer(tokenizer: PreTrainedTokenizerFast) -> None:
    model = tiny_clip(tokenizer, temperature=0.1)
    assert model.logit_scale.item() == 10.0
    assert all("logit_scale" not in name for name, _ in model.named_parameters())


def test_learnable_temperature_starts_at_the_paper_value_and_is_clamped_between_steps(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    model = tiny_clip(tokenizer, learnable_temperature=True, temperature=0.1, max_logit_scale=50)
    assert "log_logit_scale" in dict(model.named_parameters())
    assert model.logit_scale.item() == pytest.approx(10.0)
    with torch.no_grad():
        model.log_logit_scale.fill_(math.log(1000.0))
    # past the bound the scale still learns: a clamp in the forward pass would zero this gradient
    model.logit_scale.backward()
    assert model.log_logit_scale.grad.item() == pytest.approx(1000.0)
    model.clamp_logit_scale()  # what training does after each optimiser step
    assert model.logit_scale.item() == pytest.approx(50.0)
    with torch.no_grad():
        model.log_logit_scale.fill_(-1.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == pytest.approx(1.0)  # τ at most 1, as in open_clip


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"temperature": 0.001}, "temperature"),
        ({"projection": "conv"}, "projection"),
        ({"attn_implementation": "flash"}, "attn_implementation"),
        ({"embed_dim": 0}, "embed_dim"),
    ],
)
def test_config_rejects_bad_values(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChestCLIPConfig(**overrides)  # type: ignore[arg-type]


def test_config_round_trips_and_rejects_unknown_keys() -> None:
    config = ChestCLIPConfig(image_encoder="tiny-vit", learnable_temperature=True)
    assert ChestCLIPConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown ChestCLIPConfig keys: colour"):
        ChestCLIPConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_text_length_must_fit_the_text_encoder(tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ValueError, match="exceeds the text encoder's 128 positions"):
        tiny_clip(tokenizer, max_text_length=512)
