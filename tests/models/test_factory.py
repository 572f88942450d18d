"""The from_pretrained path (how real weights load), exercised with tiny models saved locally."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    PreTrainedTokenizerFast,
    ResNetConfig,
    ResNetModel,
    ViTConfig,
    ViTModel,
)

from chestclip.models import (
    build_image_encoder,
    build_text_encoder,
    build_tokenizer,
    load_tokenizer,
    train_wordpiece_tokenizer,
)

VIT_MEAN, VIT_STD = [0.4, 0.45, 0.5], [0.2, 0.25, 0.3]


def save_vit(directory: Path, *, with_preprocessor: bool = True) -> ViTModel:
    torch.manual_seed(0)
    model = ViTModel(
        ViTConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=64,
            patch_size=16,
        )
    )
    model.save_pretrained(directory)
    if with_preprocessor:
        preprocessor = {"image_mean": VIT_MEAN, "image_std": VIT_STD}
        (directory / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return model


def weights_match(saved: torch.nn.Module, built: torch.nn.Module) -> bool:
    """Every saved tensor was loaded, except the pooler the encoders drop."""
    built_state = built.state_dict()
    saved_state = {k: v for k, v in saved.state_dict().items() if not k.startswith("pooler.")}
    return built_state.keys() == saved_state.keys() and all(
        torch.equal(built_state[name], value) for name, value in saved_state.items()
    )


def test_vit_from_directory_keeps_weights_and_reads_mean_std(tmp_path: Path, offline: None) -> None:
    saved = save_vit(tmp_path / "vit")
    encoder = build_image_encoder(tmp_path / "vit", attn_implementation="eager")
    assert weights_match(saved, encoder.backbone)
    assert encoder.backbone.pooler is None  # unused by CLS features
    assert (list(encoder.image_mean), list(encoder.image_std)) == (VIT_MEAN, VIT_STD)
    assert (encoder.image_size, encoder.token_grid) == (64, (4, 4))
    pixels = torch.rand(2, 1, 64, 64)
    normalised = (
        pixels.repeat(1, 3, 1, 1) - torch.tensor(VIT_MEAN).view(1, 3, 1, 1)
    ) / torch.tensor(VIT_STD).view(1, 3, 1, 1)
    expected = saved.eval()(pixel_values=normalised).last_hidden_state[:, 0]
    torch.testing.assert_close(encoder.eval()(pixels), expected)


def test_pretrained_encoders_are_built_in_training_mode(tmp_path: Path, offline: None) -> None:
    """from_pretrained returns eval mode; built encoders used to keep it, so a pretrained BERT or
    ViT trained with its dropout off."""
    save_vit(tmp_path / "vit")
    torch.manual_seed(0)
    bert = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, vocab_size=50)  # fmt: skip
    BertModel(bert).save_pretrained(tmp_path / "bert")
    for encoder in (build_image_encoder(tmp_path / "vit"), build_text_encoder(tmp_path / "bert")):
        assert all(module.training for module in encoder.modules())


def test_vit_at_another_image_size_interpolates_positions(tmp_path: Path, offline: None) -> None:
    save_vit(tmp_path / "vit")
    encoder = build_image_encoder(tmp_path / "vit", image_size=32).eval()
    assert encoder.token_grid == (2, 2)
    assert encoder(torch.rand(2, 1, 32, 32)).shape == (2, 32)


def test_missing_preprocessor_config_falls_back_by_kind(
    tmp_path: Path, offline: None, caplog: pytest.LogCaptureFixture
) -> None:
    save_vit(tmp_path / "vit", with_preprocessor=False)
    ResNetModel(
        ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
    ).save_pretrained(tmp_path / "resnet")
    with caplog.at_level(logging.WARNING, logger="chestclip.models.factory"):
        vit = build_image_encoder(tmp_path / "vit")
        resnet = build_image_encoder(tmp_path / "resnet")
    assert vit.image_mean == (0.5, 0.5, 0.5)
    assert resnet.image_mean == pytest.approx((0.485, 0.456, 0.406))
    assert caplog.text.count("no image mean/std") == 2


def test_resnet_from_directory(tmp_path: Path, offline: None) -> None:
    torch.manual_seed(0)
    saved = ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]))
    saved.save_pretrained(tmp_path / "resnet")
    preprocessor = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    (tmp_path / "resnet" / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    encoder = build_image_encoder(tmp_path / "resnet")  # "sdpa" requested, no attention to apply
    assert weights_match(saved, encoder.backbone)
    assert encoder.output_dim == 16
    assert encoder.eval()(torch.rand(2, 1, 48, 48)).shape == (2, 16)


def test_bert_and_its_tokenizer_from_directory(
    tmp_path: Path, offline: None, reports: list[str]
) -> None:
    tokenizer = train_wordpiece_tokenizer(reports * 5, vocab_size=300)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    saved = BertModel(config)
    saved.save_pretrained(tmp_path / "bert")
    tokenizer.save_pretrained(tmp_path / "bert")

    encoder = build_text_encoder(tmp_path / "bert", vocab_size=len(tokenizer))
    assert weights_match(saved, encoder.backbone)
    assert encoder.backbone.pooler is None
    loaded = load_tokenizer(tmp_path / "bert")
    expected_ids = tokenizer(reports)["input_ids"]
    assert loaded(reports)["input_ids"] == expected_ids
    assert build_tokenizer(tmp_path / "bert")(reports)["input_ids"] == expected_ids
    tokens = loaded(reports[:2], padding=True, return_tensors="pt")
    expected = saved.eval()(**tokens).last_hidden_state[:, 0]
    torch.testing.assert_close(
        encoder.eval()(tokens["input_ids"], tokens["attention_mask"]), expected
    )
    with pytest.raises(ValueError, match="embeds only"):
        build_text_encoder(tmp_path / "bert", vocab_size=len(tokenizer) + 1)


def test_wordpiece_tokenizer_is_bert_style(reports: list[str]) -> None:
    tokenizer = train_wordpiece_tokenizer(reports * 5, vocab_size=300)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    ids = tokenizer("No Acute Disease")["input_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True).startswith("no acute")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == specials
    assert len(tokenizer) <= 300


def test_text_presets_train_a_tokenizer_only_when_given_texts(reports: list[str]) -> None:
    assert len(build_tokenizer("tiny-bert", reports, vocab_size=200)) <= 200
    with pytest.raises(ValueError, match="pass texts"):
        build_tokenizer("tiny-bert")
