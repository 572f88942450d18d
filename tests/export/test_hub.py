"""A run exported as one Hub folder: complete, a valid --run for predict with identical outputs,
loadable with from_pretrained, with a Hub model card; `chestclip push` up to the upload, offline."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from huggingface_hub import HfApi, ModelCard

from chestclip.cli import cli, main
from chestclip.errors import ChestClipError
from chestclip.export import export_hub_folder
from chestclip.inference.model_card import render_model_card
from chestclip.inference.predict import Predictor, validation_thresholds
from chestclip.models import ChestCLIP, load_clip

pytestmark = pytest.mark.slow
CLIP_FILES = ["config.json", "data.json", "model.safetensors", "tokenizer"]


@pytest.fixture(scope="module")
def exported(evaluated_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_hub_folder(evaluated_run, tmp_path_factory.mktemp("hub") / "model")


def test_folder_holds_clip_heads_thresholds_metrics_and_card(evaluated_run, exported) -> None:
    names = sorted(p.name for p in exported.iterdir())
    assert names == sorted([*CLIP_FILES, "README.md", "heads", "eval", "config.yaml"])
    assert not (exported / "retrieval").exists()  # training reports are data, not model
    thresholds = validation_thresholds(evaluated_run)
    for head in (evaluated_run / "heads").iterdir():
        info = json.loads((exported / "heads" / head.name / "head.json").read_text())
        assert info["threshold"] == thresholds[head.name]
        weights = (exported / "heads" / head.name / "head.safetensors").read_bytes()
        assert weights == (head / "head.safetensors").read_bytes()


def test_card_is_a_hub_card_with_metrics_and_cis(evaluated_run, exported) -> None:
    card = ModelCard.load(exported / "README.md")
    assert card.data.license == "apache-2.0" and card.data.library_name == "chestclip"
    assert card.data.datasets == ["synthetic chest X-ray phantoms (chestclip phantom)"]
    metrics = json.loads((evaluated_run / "eval/metrics.json").read_text())["heads"]
    results = {(r.metric_config, r.metric_name): r for r in card.data.eval_results}
    auc = metrics["image"]["levels"]["image"]["metrics"]["roc_auc"]
    found = results[("image", "ROC-AUC per image, image head")]
    assert found.metric_value == auc["value"] and found.dataset_split == "test"
    assert found.metric_args["threshold"] == metrics["image"]["threshold"]["value"]
    assert (found.metric_args.get("ci_low"), found.metric_args.get("ci_high")) == (
        auc["ci_low"],
        auc["ci_high"],
    )  # None (left out of the YAML) when evaluated without bootstrap
    assert not any(r.metric_config.startswith("bag-of-words") for r in card.data.eval_results)
    assert results[("multimodal", "ROC-AUC per image, multimodal head")].metric_args[
        "reads_findings"
    ]
    assert "## Intended use" in card.text and "## Limitations" in card.text
    assert "Not a medical device" in card.text
    assert render_model_card(evaluated_run) == (exported / "README.md").read_text()


def test_from_pretrained_on_the_folder_is_the_runs_model(evaluated_run, exported) -> None:
    run_model, tokenizer = load_clip(evaluated_run)
    model = ChestCLIP.from_pretrained(exported)
    pixels = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    tokens = tokenizer(["heart normal", "effusion"], padding=True, return_tensors="pt")
    with torch.no_grad():
        for ours, theirs in zip(
            model(pixels, tokens["input_ids"], tokens["attention_mask"]),
            run_model(pixels, tokens["input_ids"], tokens["attention_mask"]),
            strict=True,
        ):
            assert torch.equal(ours, theirs)


def test_predict_on_the_folder_equals_predict_on_the_run(evaluated_run, exported, xray_files):
    from_run, from_folder = Predictor.load(evaluated_run), Predictor.load(exported)
    image = from_run.read(xray_files["png"])
    for indication in (None, "cough and fever"):
        a = from_run.predict(image, indication, drafts=0)
        b = from_folder.predict(image, indication, drafts=0)
        assert a.probabilities == b.probabilities and a.decisions == b.decisions
        assert a.thresholds == b.thresholds and all(v is not None for v in b.thresholds.values())
        assert np.array_equal(a.heatmap, b.heatmap) and a.top_zones == b.top_zones


def test_push_uploads_the_exported_folder(evaluated_run, monkeypatch, capsys) -> None:
    calls: dict[str, object] = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, **kwargs):
        folder = Path(kwargs.pop("folder_path"))
        calls["files"] = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
        calls["card"] = (folder / "README.md").read_text()
        calls["upload_folder"] = kwargs
        return SimpleNamespace(commit_url="https://huggingface.co/org/cxr/commit/abc")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(
        sys,
        "argv",
        ["chestclip", "push", "--run", str(evaluated_run), "--repo-id", "org/cxr", "--private"],
    )
    main()
    assert calls["create_repo"] == (
        "org/cxr",
        {"private": True, "repo_type": "model", "exist_ok": True},
    )
    upload = calls["upload_folder"]
    assert upload["repo_id"] == "org/cxr" and upload["repo_type"] == "model"
    files = calls["files"]
    assert {*CLIP_FILES, "README.md", "eval/metrics.json", "heads/image/head.json"} <= set(files)
    assert "heads/image/head.safetensors" in files and "tokenizer/tokenizer.json" in files
    assert calls["card"] == render_model_card(evaluated_run)
    assert capsys.readouterr().out.strip().endswith("→ https://huggingface.co/org/cxr/commit/abc")


def test_push_failure_is_one_line(evaluated_run, monkeypatch, capsys) -> None:
    def refused(self, repo_id, **kwargs):
        raise OSError("401 Client Error: Unauthorized\nInvalid credentials in Authorization header")

    monkeypatch.setattr(HfApi, "create_repo", refused)
    monkeypatch.setattr(
        sys, "argv", ["chestclip", "push", "--run", str(evaluated_run), "--repo-id", "org/cxr"]
    )
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert err == "chestclip: error: org/cxr: push failed (401 Client Error: Unauthorized)\n"


def test_export_needs_an_evaluated_run(probed_run, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(probed_run[0], run, ignore=shutil.ignore_patterns("eval"))
    with pytest.raises(ChestClipError, match="run `chestclip evaluate` first"):
        export_hub_folder(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_command(evaluated_run, tmp_path) -> None:
    args = ["export", "--run", str(evaluated_run), "--format", "hf", "--out", str(tmp_path / "hf")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and result.output.strip() == f"→ {tmp_path / 'hf'}"
    assert (tmp_path / "hf/README.md").is_file()
    result = CliRunner().invoke(cli, [*args, "--quantize", "int8"])
    assert result.exit_code == 2 and "--quantize applies to --format onnx only" in result.output
