"""explain on the tiny CLIP trained on phantoms: batch outputs, one image, report section."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chestclip.data import PreparedData
from chestclip.errors import ChestClipError
from chestclip.explain import registry, stage
from chestclip.explain.base import CamMethod
from chestclip.explain.stage import explain_image, explain_split
from chestclip.explain.summary import summary_table
from chestclip.inference.predict import validation_thresholds

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
    assert method["randomisation_rank_correlation"]["value"] < 0.9  # maps change with weights
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
    assert method["randomisation_rank_correlation"]["value"] < 0.9
    assert (out / "gallery.png").is_file()


def test_the_gallery_sorts_outcomes_at_the_validation_threshold_and_says_which(
    evaluated_run, prepared_phantoms, tmp_path, monkeypatch
):
    """The gallery's TP/FP/TN/FN must agree with evaluate's confusion matrix, not with 0.5."""
    shown = {}
    monkeypatch.setattr(
        stage, "save_gallery", lambda path, panels, **kw: shown.update(panels=panels, **kw)
    )
    explain_split(evaluated_run, prepared_phantoms, "test", limit=12, head="image", out=tmp_path)
    threshold = validation_thresholds(evaluated_run)["image"]
    assert threshold != 0.5
    assert f"P ≥ {threshold:.3f} (validation threshold" in shown["title"]
    saved = json.loads((tmp_path / "faithfulness.json").read_text())["gallery_threshold"]
    assert saved["value"] == threshold
    roi = pd.read_csv(tmp_path / "roi.csv").drop_duplicates("image_id").set_index("image_id")
    outcomes = {(True, 1): "TP", (True, 0): "FP", (False, 0): "TN", (False, 1): "FN"}
    for panel in shown["panels"]:
        outcome, _, image_id = panel.title.split(" · ")
        image = roi.loc[image_id]
        assert outcome == outcomes[(bool(image["probability"] >= threshold), image["label"])]


def test_the_randomisation_cascade_has_an_interval_at_every_step(explained):
    """Adebayo et al.: head, projection, then every block from the top down, each step's rank
    correlation measured on every explained image with a bootstrap interval, and plotted."""
    _, out, summary = explained
    cascade = summary["randomisation"]
    assert cascade["images"] == 24
    steps = cascade["methods"]["cnn-gradcam"]
    blocks = [step["blocks"] for step in steps]
    assert [step["step"] for step in steps[:2]] == ["head", "projection"]
    assert blocks == [0, 0, *range(1, len(steps) - 1)] and len(steps) >= 4
    assert steps[-1]["step"] == f"block 1/{len(steps) - 2}"
    for step in steps:
        ci = step["rank_correlation"]
        assert 0 < step["pairs"] <= 24 and ci["ci_low"] <= ci["value"] <= ci["ci_high"]
    top_block = summary["methods"]["cnn-gradcam"]["randomisation_rank_correlation"]
    assert top_block == steps[2]["rank_correlation"]
    assert (out / "randomisation.png").stat().st_size > 10_000


class ValidationBlind(CamMethod):
    """cnn-gradcam's maps, except on validation images, where the map is empty: a method that
    fails where the default is chosen and is indistinguishable from cnn-gradcam on test."""

    name = "validation-blind"
    requirement = "a CNN"

    def __init__(self, validation_images: set[bytes]):
        self.validation_images = validation_images

    def applies_to(self, encoder) -> bool:
        return registry.METHODS["cnn-gradcam"].applies_to(encoder)

    def grid_map(self, model, pixels, score_fn):
        grid = registry.METHODS["cnn-gradcam"].grid_map(model, pixels, score_fn)
        image = (pixels.detach()[0, 0] * 255).round().byte().numpy().tobytes()
        return grid * 0 if image in self.validation_images else grid


def test_the_default_method_is_chosen_on_validation_and_test_only_reports(
    probed_run, prepared_phantoms, tmp_path, monkeypatch
):
    run, _ = probed_run
    data = PreparedData(prepared_phantoms)
    val = data.split_images("val")
    images = {np.asarray(data.array[row]).tobytes() for row in val["row"]}
    monkeypatch.setitem(registry.METHODS, "validation-blind", ValidationBlind(images))
    methods = ["validation-blind", "cnn-gradcam"]  # on test they tie: the first would win
    summary = explain_split(
        run, prepared_phantoms, "test", limit=8, methods=methods, head="image", out=tmp_path
    )
    assert summary["default_method"] == "cnn-gradcam" and summary["default_chosen_on"] == "val"
    blind = summary["validation"]["methods"]["validation-blind"]
    assert blind["empty_maps"] == blind["images"] == 8
    reported = summary["methods"]
    assert reported["validation-blind"]["deletion_gain"] == reported["cnn-gradcam"]["deletion_gain"]
    assert set(pd.read_csv(tmp_path / "roi_val.csv")["image_id"]) <= set(val["image_id"])
    test_ids = set(data.split_images("test")["image_id"])
    assert set(pd.read_csv(tmp_path / "roi.csv")["image_id"]) <= test_ids


def test_a_typed_text_is_embedded_as_training_embedded_its_texts(probed_run):
    """Under `clean: none` training texts end with a full stop; the typed indication must too."""
    from chestclip.evaluation.features import encode_texts

    run, _ = probed_run
    explainer = stage.Explainer.load(run, "multimodal")
    typed = explainer.text_embedding("Cough and fever", "none").numpy()
    trained = encode_texts(explainer.model, explainer.tokenizer, ["Cough and fever."])[0]
    np.testing.assert_allclose(typed, trained, atol=1e-6)


def test_a_split_without_frontal_images_is_explained_on_every_view(
    probed_run, lateral_only, tmp_path, caplog
):
    import logging

    run, _ = probed_run
    with caplog.at_level(logging.WARNING, logger="chestclip.data.dataset"):
        summary = explain_split(run, lateral_only, "test", limit=4, head="image", out=tmp_path)
    assert "no frontal image in split(s) test: explain uses every view" in caplog.text
    recorded = json.loads((tmp_path / "faithfulness.json").read_text())
    assert recorded["views"] == summary["views"] == "all"
    assert "no frontal image" in recorded["warning"]
    assert summary["methods"]["cnn-gradcam"]["images"] == 4


def test_a_dicom_is_explained_as_its_png(explained, xray_files, tmp_path):
    """`explain --image` reads DICOM (here MONOCHROME1, no extension) as `predict` does."""
    from click.testing import CliRunner

    from chestclip.cli import cli

    run, _, _ = explained
    png = explain_image(run, xray_files["png"], tmp_path / "png")
    dicom = explain_image(run, xray_files["mono1"], tmp_path / "dicom")
    assert dicom["probability_diseased"] == pytest.approx(png["probability_diseased"], abs=1e-4)
    assert dicom["top_zones"] == png["top_zones"]
    args = ["explain", "--run", str(run), "--image", str(xray_files["mono2"])]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "d_cnn-gradcam.png").is_file()


def test_the_default_method_is_the_one_measured_on_the_runs_validation_images(
    vit_detector, tmp_path
):
    """`explain --image`, `predict` and `serve` use what batch explain chose for this run."""
    from chestclip.utils.run_layout import RunLayout

    model, _ = vit_detector
    assert stage.default_method(model, tmp_path) == "attention-gradcam"  # not explained yet
    summary = RunLayout(tmp_path).faithfulness
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"default_method": "rollout"}))
    assert stage.default_method(model, tmp_path) == "rollout"
    summary.write_text(json.dumps({"default_method": "cnn-gradcam"}))  # another encoder's
    assert stage.default_method(model, tmp_path) == "attention-gradcam"
