"""``model.init_from``: pretrained dual encoders in every supported format become a ChestCLIP that
computes exactly what the source computed; unsupported input is one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModel

from chestclip.errors import ChestClipError
from chestclip.explain.registry import methods_for
from chestclip.models import ChestCLIP, ChestCLIPConfig, build_clip, load_clip, save_clip
from chestclip.models.encoders import has_cls_token
from chestclip.models.factory import build_tokenizer
from chestclip.models.init_from import load_dual_encoder

ATOL = 1e-5
VIT_METHODS = ["attention-gradcam", "gradcam", "rollout"]


def converted(source, **overrides: object) -> ChestCLIP:
    settings = {"image_size": source.image_size, "max_text_length": source.context}
    config = ChestCLIPConfig(init_from=str(source.path), **{**settings, **overrides})
    return build_clip(config).eval()


def pixels_and_tokens(vocab: int, end_token: int, context: int = 16):
    """Grey images [3, 1, 32, 32]; token ids [3, context] ending with ``end_token`` at varied
    lengths, zeros after it, and their attention mask."""
    generator = torch.Generator().manual_seed(3)
    pixels = torch.rand(3, 1, 32, 32, generator=generator)
    ids = torch.randint(5, vocab - 2, (3, context), generator=generator)
    mask = torch.ones_like(ids)
    for row, length in enumerate((4, 9, context)):
        ids[row, length - 1], ids[row, length:], mask[row, length:] = end_token, 0, 0
    return pixels, ids, mask


def reference_pixels(model: ChestCLIP, pixels: torch.Tensor) -> torch.Tensor:
    """What the source model was fed: grey replicated to RGB, normalised with its mean/std."""
    encoder = model.image_encoder
    return (pixels.expand(-1, 3, -1, -1) - encoder.pixel_mean) / encoder.pixel_std


def features(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@pytest.mark.parametrize("name", ["hf-clip", "vtde"])
def test_hugging_face_dual_encoders_convert_exactly(
    dual_encoder_sources: dict, offline: None, name: str
) -> None:
    source = dual_encoder_sources[name]
    model = converted(source, learnable_temperature=True, temperature=0.07)
    tokenizer = build_tokenizer("unused", init_from=str(source.path))
    pixels, ids, mask = pixels_and_tokens(len(tokenizer), tokenizer.sep_token_id)
    reference = source.reference
    with torch.no_grad():
        image = F.normalize(features(reference.get_image_features(reference_pixels(model, pixels))))
        text = F.normalize(
            features(reference.get_text_features(input_ids=ids, attention_mask=mask))
        )
        assert torch.allclose(model.encode_image(pixels), image, atol=ATOL)
        assert torch.allclose(model.encode_text(ids, mask), text, atol=ATOL)
    assert torch.allclose(model.logit_scale, reference.logit_scale.exp())
    assert model.config.init_from == str(source.path)


def test_hf_clip_vision_tower_is_a_vit(dual_encoder_sources: dict, offline: None) -> None:
    model = converted(dual_encoder_sources["hf-clip"], image_size=64)
    encoder = model.image_encoder
    assert type(encoder.backbone).__name__ == "CLIPVisionModel"
    assert encoder.uses_cls_token and encoder.token_grid == (8, 8)  # 32-px checkpoint at 64 px
    assert methods_for(model) == VIT_METHODS


def test_a_clip_vision_model_is_recognised_as_a_vit() -> None:
    """It used to be taken for a CNN: no token grid, so no ViT explanation applied to it."""
    config = CLIPVisionConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=64, image_size=32, patch_size=8)  # fmt: skip
    assert has_cls_token(CLIPVisionModel(config))


def test_open_clip_timm_and_bert_convert_exactly(dual_encoder_sources: dict, offline: None) -> None:
    source = dual_encoder_sources["biomedclip"]
    model = converted(source)
    assert model.image_encoder.image_mean == (0.5, 0.4, 0.3)  # from open_clip_config.json
    assert (model.config.image_projection_kind, model.config.text_projection_kind) == (
        "linear",
        "open-clip-mlp",
    )
    tokenizer = build_tokenizer("unused", init_from=str(source.path))
    pixels, ids, mask = pixels_and_tokens(len(tokenizer), tokenizer.sep_token_id)
    with torch.no_grad():
        image = F.normalize(source.reference.encode_image(reference_pixels(model, pixels)))
        text = F.normalize(source.reference.encode_text(ids, mask))
        assert torch.allclose(model.encode_image(pixels), image, atol=ATOL)
        assert torch.allclose(model.encode_text(ids, mask), text, atol=ATOL)
    assert type(model.image_encoder.backbone).__name__ == "ViTModel"
    assert methods_for(model) == VIT_METHODS


def test_openai_style_state_dict_converts_exactly(
    dual_encoder_sources: dict, offline: None
) -> None:
    source = dual_encoder_sources["chexzero"]
    model = converted(source)
    vocab = source.reference.token_embedding.num_embeddings
    pixels, ids, mask = pixels_and_tokens(vocab, end_token=vocab - 1)  # OpenAI's end-of-text
    with torch.no_grad():
        image = F.normalize(source.reference.encode_image(reference_pixels(model, pixels)))
        text = F.normalize(source.reference.encode_text(ids))  # causal: padding never seen
        assert torch.allclose(model.encode_image(pixels), image, atol=ATOL)
        assert torch.allclose(model.encode_text(ids, mask), text, atol=ATOL)
    assert model.config.text_pooling == "pooler"
    assert model.image_encoder.backbone.config.num_attention_heads == 2  # width 128 // 64
    assert methods_for(model) == VIT_METHODS


def test_training_checkpoint_wrapper_and_ddp_prefix(
    dual_encoder_sources: dict, tmp_path: Path
) -> None:
    source = dual_encoder_sources["chexzero"]
    state = {f"module.{k}": v for k, v in source.reference.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state}, tmp_path / "epoch_3.pt")
    dual = load_dual_encoder(str(tmp_path / "epoch_3.pt"))
    assert dual.embed_dim == 16 and dual.log_logit_scale == pytest.approx(2.6593)


def test_converted_model_saves_and_loads_without_its_source(
    dual_encoder_sources: dict, tmp_path: Path, offline: None
) -> None:
    source = dual_encoder_sources["biomedclip"]
    copy = tmp_path / "biomedclip"
    shutil.copytree(source.path, copy)
    model = build_clip(ChestCLIPConfig(init_from=str(copy), image_size=32, max_text_length=16))
    tokenizer = build_tokenizer("unused", init_from=str(copy))
    save_clip(model.eval(), tokenizer, tmp_path / "clip")
    shutil.rmtree(copy)
    loaded, _ = load_clip(tmp_path / "clip")
    pixels, ids, mask = pixels_and_tokens(len(tokenizer), tokenizer.sep_token_id)
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(pixels), model.encode_image(pixels))
        assert torch.equal(loaded.encode_text(ids, mask), model.encode_text(ids, mask))
    assert loaded.config == model.config


def test_full_clip_as_image_encoder_points_to_init_from(
    dual_encoder_sources: dict, offline: None
) -> None:
    path = dual_encoder_sources["hf-clip"].path
    config = ChestCLIPConfig(image_encoder=str(path), text_encoder="tiny-bert", image_size=32)
    with pytest.raises(ChestClipError) as error:
        build_clip(config, vocab_size=50)
    message = str(error.value)
    assert "\n" not in message and f"model.init_from={path}" in message and "clip" in message


def test_text_longer_than_the_towers_positions_is_one_line(dual_encoder_sources: dict) -> None:
    with pytest.raises(ChestClipError, match=r"set model\.max_text_length=16 or less"):
        converted(dual_encoder_sources["chexzero"], max_text_length=77)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s | {"logit_bias": torch.zeros(())}, "SigLIP"),
        (lambda s: s | {"visual.attnpool.c_proj.weight": torch.zeros(2, 2)}, "unsupported layout"),
        (lambda s: {k: v for k, v in s.items() if not k.startswith("visual.ln_post")}, "missing"),
    ],
)
def test_unsupported_checkpoints_are_one_line(
    dual_encoder_sources: dict, tmp_path: Path, mutate, message: str
) -> None:
    state = mutate(dict(dual_encoder_sources["chexzero"].reference.state_dict()))
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(ChestClipError, match=message) as error:
        load_dual_encoder(str(tmp_path / "model.pt"))
    assert "\n" not in str(error.value) and str(tmp_path / "model.pt") in str(error.value)


def test_unreadable_and_unknown_sources_are_one_line(tmp_path: Path, offline: None) -> None:
    (tmp_path / "garbage.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ChestClipError, match="not a readable state dict"):
        load_dual_encoder(str(tmp_path / "garbage.bin"))
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit/config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(ChestClipError, match="model_type 'vit' cannot start a ChestCLIP"):
        load_dual_encoder(str(tmp_path / "vit"))
    with pytest.raises(ChestClipError, match="not a Hugging Face dual encoder"):
        load_dual_encoder(str(tmp_path / "missing"))


def test_tokenizer_comes_from_beside_the_checkpoint(dual_encoder_sources: dict, tmp_path: Path):
    source = dual_encoder_sources["chexzero"].path  # a bare file, no tokenizer beside it
    with pytest.raises(ChestClipError, match="no tokenizer found with this checkpoint"):
        build_tokenizer("unused", init_from=str(source))
    shutil.copy(source, tmp_path / "chexzero.pt")
    tokenizer = build_tokenizer("unused", init_from=str(dual_encoder_sources["vtde"].path))
    tokenizer.save_pretrained(tmp_path)
    assert len(build_tokenizer("unused", init_from=str(tmp_path / "chexzero.pt"))) == len(tokenizer)


def test_hf_text_tower_needs_its_config(dual_encoder_sources: dict, tmp_path: Path) -> None:
    copy = tmp_path / "biomedclip"
    shutil.copytree(dual_encoder_sources["biomedclip"].path, copy)
    settings = json.loads((copy / "open_clip_config.json").read_text())
    settings["model_cfg"]["text_cfg"]["hf_model_name"] = str(tmp_path / "absent-bert")
    (copy / "open_clip_config.json").write_text(json.dumps(settings))
    with pytest.raises(ChestClipError, match=r"text tower.s config .* is not available here"):
        load_dual_encoder(str(copy))
