"""ChestCLIP as a Hugging Face Hub model: save_pretrained / from_pretrained (a directory, a run,
or a Hub repository id served from the local cache) / push_to_hub, bit-identical and offline."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from transformers import PreTrainedTokenizerFast

from chestclip.models import ChestCLIP, ChestCLIPConfig, build_clip, save_clip

SIZE = 64


def tiny_model(tokenizer: PreTrainedTokenizerFast) -> ChestCLIP:
    torch.manual_seed(0)
    config = ChestCLIPConfig(image_encoder="tiny-vit", text_encoder="tiny-bert", embed_dim=32,
                             image_size=SIZE, learnable_temperature=True)  # fmt: skip
    model = build_clip(config, vocab_size=len(tokenizer)).eval()
    with torch.no_grad():
        model.log_logit_scale.add_(0.3)  # a trained value must survive
    return model


def same_outputs(a: ChestCLIP, b: ChestCLIP, tokenizer: PreTrainedTokenizerFast) -> bool:
    pixels = torch.rand(2, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    tokens = tokenizer(["no effusion", "cardiomegaly"], padding=True, return_tensors="pt")
    with torch.no_grad():
        first = a(pixels, tokens["input_ids"], tokens["attention_mask"])
        second = b(pixels, tokens["input_ids"], tokens["attention_mask"])
    return all(torch.equal(x, y) for x, y in zip(first, second, strict=True))


def test_save_pretrained_then_from_pretrained(tmp_path: Path, offline: None, tokenizer) -> None:
    model = tiny_model(tokenizer)
    model.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    card = ModelCard.load(tmp_path / "model/README.md")
    assert card.data.library_name == "chestclip" and card.data.license == "apache-2.0"
    loaded = ChestCLIP.from_pretrained(tmp_path / "model")
    assert not loaded.training and loaded.config == model.config
    assert same_outputs(model, loaded, tokenizer)


def test_from_pretrained_reads_a_run(tmp_path: Path, offline: None, tokenizer) -> None:
    model = tiny_model(tokenizer)
    save_clip(model, tokenizer, tmp_path / "run/clip")
    assert same_outputs(model, ChestCLIP.from_pretrained(tmp_path / "run"), tokenizer)


def test_from_pretrained_by_hub_id_from_the_cache(tmp_path: Path, offline: None, tokenizer) -> None:
    """A repository id resolves through huggingface_hub's cache layout: no network here."""
    model = tiny_model(tokenizer)
    repo = tmp_path / "cache/models--my-org--chestclip"
    commit = "0" * 40
    model.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs/main").write_text(commit)
    loaded = ChestCLIP.from_pretrained(
        "my-org/chestclip", cache_dir=tmp_path / "cache", local_files_only=True
    )
    assert same_outputs(model, loaded, tokenizer)
    with pytest.raises(FileNotFoundError, match="not a reachable Hub repository"):
        ChestCLIP.from_pretrained(
            "my-org/absent", cache_dir=tmp_path / "cache", local_files_only=True
        )


def test_push_to_hub_uploads_config_weights_and_card(
    tmp_path: Path, offline: None, tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploaded: dict[str, object] = {}

    def create_repo(self, repo_id, **kwargs):
        uploaded["create"] = (repo_id, kwargs)
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, **kwargs):
        uploaded["files"] = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
        uploaded["config"] = (Path(kwargs["folder_path"]) / "config.json").read_text()
        return "https://huggingface.co/my-org/chestclip/commit/0"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    model = tiny_model(tokenizer)
    model.push_to_hub("my-org/chestclip", private=True)
    assert uploaded["create"] == ("my-org/chestclip", {"private": True, "exist_ok": True})
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors"]
    assert json.loads(uploaded["config"]) == json.loads(json.dumps(model.config.to_dict()))
