"""ONNX export of the image path and `--runtime onnx`: equal to eager PyTorch within the stated
tolerance, identical decisions on the phantom test split, stale exports refused, one-line errors."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from chestclip.cli import cli
from chestclip.data import PreparedData
from chestclip.errors import ChestClipError
from chestclip.evaluation.features import FeatureCache
from chestclip.export.onnx import TOLERANCE, OnnxScorer, check_pixels, export_onnx
from chestclip.inference.predict import Predictor, validation_thresholds
from chestclip.models import ChestCLIPConfig, build_clip, load_clip, save_clip
from chestclip.models.heads import MLPHead
from chestclip.training.probe import head_features, load_head
from chestclip.utils.extras import MissingExtraError


def tiny_vit_run(run: Path, tokenizer) -> Path:
    """A run directory with just what export needs: a random tiny-ViT CLIP and an image head."""
    torch.manual_seed(0)
    config = ChestCLIPConfig(image_encoder="tiny-vit", text_encoder="tiny-bert", embed_dim=32,
                             image_size=64)  # fmt: skip
    save_clip(build_clip(config, vocab_size=len(tokenizer)).eval(), tokenizer, run / "clip")
    head = MLPHead(32, (16,))
    (run / "heads/image").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()},
              run / "heads/image/head.safetensors")  # fmt: skip
    info = {"name": "image", "kind": "image", "inputs": ["image"], "text_fields": None,
            "in_dim": 32, "hidden_sizes": [16], "dropout": 0.0}  # fmt: skip
    (run / "heads/image/head.json").write_text(json.dumps(info))
    return run


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chestclip.models import train_wordpiece_tokenizer

    tokenizer = train_wordpiece_tokenizer(["no acute disease", "effusion"], vocab_size=100)
    return tiny_vit_run(tmp_path_factory.mktemp("onnx") / "run", tokenizer)


def eager_probabilities(run: Path, pixels: torch.Tensor) -> np.ndarray:
    model, _ = load_clip(run)
    head, _ = load_head(run / "heads/image")
    with torch.no_grad():
        return head(model.encode_image(pixels)).softmax(-1)[:, 1].numpy()


def test_vit_export_matches_eager_within_tolerance(vit_run: Path) -> None:
    result = export_onnx(vit_run)
    assert result.directory == vit_run / "onnx" and result.heads == ["image"]
    assert result.max_abs_error <= TOLERANCE
    names = sorted(str(p.relative_to(result.directory)) for p in result.directory.rglob("*.*"))
    assert names == ["heads/image.onnx", "image_encoder.onnx", "manifest.json"]
    scorer = OnnxScorer.load(vit_run)
    pixels = torch.rand(5, 1, 64, 64, generator=torch.Generator().manual_seed(7))  # batch of 5
    embeddings = scorer.image_embeddings(pixels.numpy())
    found = scorer.probabilities("image", embeddings)
    np.testing.assert_allclose(found, eager_probabilities(vit_run, pixels), atol=TOLERANCE)
    model, _ = load_clip(vit_run)
    with torch.no_grad():
        np.testing.assert_allclose(embeddings, model.encode_image(pixels).numpy(), atol=1e-5)


def test_int8_export_is_smaller_and_close(vit_run: Path, tmp_path: Path) -> None:
    fp32 = export_onnx(vit_run, tmp_path / "fp32")
    int8 = export_onnx(vit_run, tmp_path / "int8", quantize="int8")
    manifest = json.loads((int8.directory / "manifest.json").read_text())
    assert manifest["quantize"] == "int8" and manifest["max_abs_error"] == int8.max_abs_error
    fp32_size = (fp32.directory / "image_encoder.onnx").stat().st_size
    assert (int8.directory / "image_encoder.onnx").stat().st_size < fp32_size / 2
    assert int8.max_abs_error < 0.05  # a random tiny ViT; the benchmark measures a trained one
    scorer = OnnxScorer(int8.directory)
    pixels = check_pixels(64)
    found = scorer.probabilities("image", scorer.image_embeddings(pixels.numpy()))
    assert np.abs(found - eager_probabilities(vit_run, pixels)).max() == pytest.approx(
        int8.max_abs_error, abs=1e-6
    )


def test_stale_or_missing_export_is_refused(vit_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(vit_run, run, ignore=shutil.ignore_patterns("onnx"))
    with pytest.raises(ChestClipError, match=r"run `chestclip export --run .* --format onnx`"):
        OnnxScorer.load(run)
    export_onnx(run)
    head = MLPHead(32, (16,))  # re-probed: other weights
    save_file({k: v.contiguous() for k, v in head.state_dict().items()},
              run / "heads/image/head.safetensors")  # fmt: skip
    with pytest.raises(ChestClipError, match="exported from other weights"):
        OnnxScorer.load(run)


def test_missing_onnx_extra_is_one_line(vit_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'chestclip\[onnx\]'$"):
        export_onnx(vit_run, vit_run / "elsewhere")


@pytest.fixture(scope="module")
def onnx_run(evaluated_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained tiny run (the shared one stays as other tests expect it), exported."""
    run = tmp_path_factory.mktemp("onnx-run") / "run"
    shutil.copytree(evaluated_run, run)
    export_onnx(run)
    return run


@pytest.mark.slow
def test_test_split_decisions_identical(onnx_run: Path, prepared_phantoms: Path) -> None:
    """Every image-reading head on every phantom test image: P(diseased) within TOLERANCE of
    eager PyTorch and the same decision at the validation threshold."""
    model, tokenizer = load_clip(onnx_run)
    data = PreparedData(prepared_phantoms)
    cache = FeatureCache(onnx_run, model, tokenizer, data, onnx_run / "clip/model.safetensors")
    rows = data.split_images("test")["row"].to_numpy()
    pixels = data.array[rows].astype(np.float32)[:, None] / 255
    scorer = OnnxScorer.load(onnx_run)
    onnx_images = scorer.image_embeddings(pixels)
    thresholds = validation_thresholds(onnx_run)
    checked = []
    for head_dir in sorted((onnx_run / "heads").iterdir()):
        head, info = load_head(head_dir)
        if "image" not in info["inputs"]:
            continue
        fields = None if info["text_fields"] is None else tuple(info["text_fields"])
        eager_features = head_features(cache, info["kind"], "test", fields)
        onnx_features = eager_features.copy()
        onnx_features[:, : onnx_images.shape[1]] = onnx_images  # the image part from ONNX
        with torch.no_grad():
            eager = head(torch.from_numpy(eager_features)).softmax(-1)[:, 1].numpy()
        found = scorer.probabilities(info["name"], onnx_features)
        assert np.abs(found - eager).max() <= TOLERANCE
        threshold = thresholds[info["name"]]
        assert np.array_equal(found >= threshold, eager >= threshold)
        checked.append(info["name"])
    assert {"image", "multimodal"} <= set(checked)


@pytest.mark.slow
def test_predict_and_serve_with_the_onnx_runtime(onnx_run: Path, xray_files, tmp_path) -> None:
    eager, onnx = Predictor.load(onnx_run), Predictor.load(onnx_run, runtime="onnx")
    image = eager.read(xray_files["png"])
    for indication in (None, "cough and fever"):
        expected = eager.predict(image, indication, drafts=3)
        found = onnx.predict(image, indication, drafts=3)
        assert found.probabilities.keys() == expected.probabilities.keys()
        for name, probability in found.probabilities.items():
            assert probability == pytest.approx(expected.probabilities[name], abs=TOLERANCE)
        assert found.decisions == expected.decisions
        assert [d["uid"] for d in found.drafts] == [d["uid"] for d in expected.drafts]
        assert found.heatmap is None and found.method is None  # not asked for: no PyTorch cost
    with_map = onnx.predict(image, method="cnn-gradcam")
    assert np.array_equal(with_map.heatmap, eager.predict(image).heatmap)

    runner = CliRunner()
    args = ["predict", "--run", str(onnx_run), str(xray_files["png"]), "--runtime", "onnx"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "no heat map (--runtime onnx" in result.output
    result = runner.invoke(cli, [*args, "--cam-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["overlay"]

    from fastapi.testclient import TestClient

    from chestclip.serve import create_app

    client = TestClient(create_app(onnx_run, predictor=onnx), base_url="http://127.0.0.1")
    with xray_files["png"].open("rb") as handle:
        response = client.post("/api/predict", files={"file": ("a.png", handle, "image/png")})
    assert response.status_code == 200 and response.json()["heatmap_png"]
