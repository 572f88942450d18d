"""explain on the tiny CLIP trained on phantoms: batch outputs, one image, report section."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from chestclip.errors import ChestClipError
from chestclip.explain.stage import explain_image, explain_split
from chestclip.explain.summary import summary_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def explained(probed_run, prepared_phantoms, tmp_path_factory):
    run, _ = probed_run
    out = tmp_path_factory.mktemp("explain")
    return run, out, explain_split(run, prepared_phantoms, "test", limit=24, head="image", out=out)


def test_batch_outputs(explained):
    _, out, summary = explained
    assert (out / "gallery.png").stat().st_size > 10_000
    roi = pd.read_csv(out / "roi.csv")
    assert roi["image_id"].nunique() == 24 and set(roi["method"]) == {"cnn-gradcam"}
    masses = roi[[c for c in roi.columns if c.startswith("mass_")]]
    filled = masses.dropna()
    assert len(filled) > 0 and ((filled.sum(axis=1) - 1).abs() < 1e-6).all()
    assert json.loads((out / "faithfulness.json").read_text())["default_method"] == "cnn-gradcam"
    method = summary["methods"]["cnn-gradcam"]
    assert method["images_with_lesion"] > 0  # phantom masks found beside the source
    assert 0 <= method["pointing_game"] <= 1 and 0 < method["pointing_baseline_area"] < 0.5
    assert method["randomisation_rank_correlation"] < 0.9  # maps change when the weights do
    assert 0 <= method["energy_in_lesion"] <= 1
    gain = method["energy_gain"]
    assert gain["ci_low"] <= gain["value"] <= gain["ci_high"]
    assert summary_table(summary).loc["cnn-gradcam", "images"] == "24"


def test_zones_used_are_recorded_and_reported(explained):
    from chestclip.evaluation.report import faithfulness_table

    _, out, _ = explained
    roi = pd.read_csv(out / "roi.csv")
    assert set(roi["zones"]) <= {"anatomy", "template"}
    counts = json.loads((out / "faithfulness.json").read_text())["zones"]
    assert sum(counts.values()) == 24 and counts.get("anatomy", 0) > 12
    assert "ROI zones (outlined on the gallery): anatomy for" in faithfulness_table(
        out / "faithfulness.json"
    )


def test_single_image_with_and_without_text(explained, prepared_phantoms, tmp_path):
    run, _, _ = explained
    images = pd.read_csv(prepared_phantoms / "images.csv").query("projection == 'Frontal'")
    path = images["file"].iloc[0]
    result = explain_image(run, path, tmp_path, text="Right lower lobe opacity.")
    assert result["head"] == "multimodal" and 0 <= result["probability_diseased"] <= 1
    assert math.isclose(sum(result["zone_masses"].values()), 1.0, abs_tol=1e-6) or all(
        math.isnan(v) for v in result["zone_masses"].values()
    )
    assert result["mentioned_zones"] == ["right_lower"] and result["zones"] in (
        "anatomy",
        "template",
    )
    assert (tmp_path / f"{Path(path).stem}_cnn-gradcam.png").stat().st_size > 5_000
    assert (tmp_path / f"{Path(path).stem}_cnn-gradcam.json").is_file()
    image_only = explain_image(run, path, tmp_path / "image")
    assert image_only["head"] == "image" and image_only["mentioned_zones"] == []
    with pytest.raises(ChestClipError, match="needs --text"):
        explain_image(run, path, tmp_path, head="multimodal")


def test_the_finetuned_image_baseline_is_explained_like_a_head(prepared_phantoms, tmp_path):
    from chestclip.config import load_run_config
    from chestclip.training.finetune import finetune_image_baseline

    finetune_image_baseline(
        prepared_phantoms, tmp_path, load_run_config("tiny", ["pretrain.epochs=2"])
    )
    out = tmp_path / "explain"
    summary = explain_split(
        tmp_path, prepared_phantoms, "test", limit=6, head="image-finetuned", out=out
    )
    assert json.loads((out / "faithfulness.json").read_text())["head"] == "image-finetuned"
    method = summary["methods"]["cnn-gradcam"]
    assert method["images"] == 6 and method["empty_maps"] < 6
    assert method["randomisation_rank_correlation"] < 0.9
    assert (out / "gallery.png").is_file()
