"""Image and text encoders built from every preset: shapes, grey input, pooling, attention."""

from __future__ import annotations

import pytest
import torch

from chestclip.models import (
    IMAGE_PRESETS,
    TEXT_PRESETS,
    ImageEncoder,
    build_image_encoder,
    build_text_encoder,
)

IMAGE_SIZE = 64


@pytest.mark.parametrize("preset", sorted(IMAGE_PRESETS))
def test_image_preset_maps_grey_images_to_features(preset: str) -> None:
    torch.manual_seed(0)
    encoder = build_image_encoder(preset, image_size=IMAGE_SIZE).eval()
    features = encoder(torch.rand(3, 1, IMAGE_SIZE, IMAGE_SIZE))
    assert features.shape == (3, encoder.output_dim)
    assert torch.isfinite(features).all()
    with pytest.raises(ValueError, match=r"grey-scale \[B, 1, H, W\]"):
        encoder(torch.rand(3, 3, IMAGE_SIZE, IMAGE_SIZE))


@pytest.mark.parametrize("preset", sorted(IMAGE_PRESETS))
def test_image_encoder_replicates_normalises_and_pools(preset: str) -> None:
    torch.manual_seed(0)
    encoder = build_image_encoder(preset, image_size=IMAGE_SIZE).eval()
    pixels = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    mean = torch.tensor(IMAGE_PRESETS[preset].mean).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_PRESETS[preset].std).view(1, 3, 1, 1)
    output = encoder.backbone(pixel_values=(pixels.repeat(1, 3, 1, 1) - mean) / std)
    if encoder.uses_cls_token:
        expected = output.last_hidden_state[:, 0]
    else:
        expected = output.pooler_output.flatten(1)
    torch.testing.assert_close(encoder(pixels), expected)


def test_vit_token_grid_comes_from_the_config() -> None:
    assert build_image_encoder("tiny-vit", image_size=64).token_grid == (8, 8)
    vit = build_image_encoder("tiny-vit", image_size=96)
    assert (vit.patch_size, vit.token_grid) == (8, (12, 12))
    hidden = vit.backbone(pixel_values=torch.rand(1, 3, 96, 96)).last_hidden_state
    assert hidden.shape[1] == 1 + 12 * 12  # CLS + patch grid
    assert build_image_encoder("tiny-resnet").token_grid is None


def test_vit_rejects_sizes_it_cannot_tile() -> None:
    vit = build_image_encoder("tiny-vit", image_size=64)
    with pytest.raises(ValueError, match="expects 64x64"):
        vit(torch.rand(1, 1, 80, 80))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        ImageEncoder(vit.backbone, vit.image_mean, vit.image_std, image_size=70)
    with pytest.raises(ValueError, match="mean/std need 3 values"):
        ImageEncoder(vit.backbone, [0.5], [0.5], image_size=64)


@pytest.mark.parametrize("preset", sorted(IMAGE_PRESETS))
def test_image_eager_and_sdpa_agree(preset: str) -> None:
    eager = build_image_encoder(preset, "eager", image_size=IMAGE_SIZE).eval()
    sdpa = build_image_encoder(preset, "sdpa", image_size=IMAGE_SIZE).eval()
    sdpa.load_state_dict(eager.state_dict())
    pixels = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(sdpa(pixels), eager(pixels), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("preset", sorted(TEXT_PRESETS))
def test_text_preset_cls_features_and_attention_implementations(preset: str) -> None:
    eager = build_text_encoder(preset, "eager", vocab_size=100).eval()
    sdpa = build_text_encoder(preset, "sdpa", vocab_size=100).eval()
    assert eager.backbone.config._attn_implementation == "eager"
    assert sdpa.backbone.config._attn_implementation == "sdpa"
    sdpa.load_state_dict(eager.state_dict())
    input_ids = torch.randint(5, 100, (2, 9))
    attention_mask = torch.ones(2, 9, dtype=torch.long)
    attention_mask[1, 5:] = 0  # padding must be masked identically by both
    features = eager(input_ids, attention_mask)
    assert features.shape == (2, eager.output_dim)
    torch.testing.assert_close(sdpa(input_ids, attention_mask), features, atol=1e-5, rtol=1e-4)
    hidden = eager.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    torch.testing.assert_close(features, hidden[:, 0])


def test_text_preset_needs_a_vocabulary_size() -> None:
    with pytest.raises(ValueError, match="needs vocab_size"):
        build_text_encoder("tiny-bert")


def test_presets_follow_the_callers_seed() -> None:
    torch.manual_seed(1)
    first = build_image_encoder("tiny-vit", image_size=IMAGE_SIZE).state_dict()
    torch.manual_seed(1)
    second = build_image_encoder("tiny-vit", image_size=IMAGE_SIZE).state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_text_mean_pooling_ignores_padding() -> None:
    from chestclip.models.encoders import TextEncoder

    encoder = TextEncoder(build_text_encoder("tiny-bert", vocab_size=100).backbone, pooling="mean")
    ids = torch.tensor([[2, 11, 12, 3]])
    padded = torch.tensor([[2, 11, 12, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    encoder.eval()
    torch.testing.assert_close(encoder(ids, torch.ones_like(ids)), encoder(padded, mask))
    with pytest.raises(ValueError, match="text pooling"):
        TextEncoder(encoder.backbone, pooling="max")
