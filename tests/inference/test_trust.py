"""`chestclip predict` and `explain --image` refuse what the run never saw: a photograph, a blank
film, and a lateral film for heads trained on frontal ones; `--allow-ood` scores them, flagged;
a run without a fitted guard still predicts, with a note (fixtures: tests/conftest.py and
tests/inference/conftest.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from chestclip.cli import cli
from chestclip.data.images import fit_square
from chestclip.explain.roi import OUTSIDE
from chestclip.inference.ood import NOT_FITTED, guard_dir
from chestclip.inference.predict import Predictor, predict_files

pytestmark = pytest.mark.slow


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_evaluate_fits_the_guard_on_validation(evaluated_run):
    document = json.loads((guard_dir(evaluated_run) / "guard.json").read_text())
    assert document["method"] == "pixels+mahalanobis" and document["quantile"] == 0.99
    assert all(share <= 0.02 for share in document["validation_refused"].values())


def test_photo_and_blank_get_no_decision_with_the_reason(evaluated_run, outlier_files, xray_files):
    files = [outlier_files["photo"], outlier_files["blank"], xray_files["png"]]
    result = CliRunner().invoke(cli, ["predict", "--run", str(evaluated_run), *map(str, files)])
    assert result.exit_code == 0, result.output
    blocks = result.stdout.split(str(outlier_files["blank"]))
    for block in blocks:  # photo's block, then the blank's (with the X-ray after it)
        assert "no decision: out of distribution" in block
    assert "→ normal" in blocks[1] or "→ diseased" in blocks[1]  # the X-ray itself is scored
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2 and "photo.jpg: out of distribution" in warnings[0]
    (photo,) = predict_files(evaluated_run, [outlier_files["photo"]])
    assert photo.decisions == {"image": None} and photo.probabilities == {"image": None}
    assert photo.trust["refused"] and photo.trust["ood"]["out_of_distribution"]
    assert photo.trust["ood"]["score"] > photo.trust["ood"]["threshold"]
    assert photo.top_zones == [] and photo.drafts == [] and photo.zones is None


def test_allow_ood_scores_them_still_flagged(evaluated_run, outlier_files, tmp_path):
    args = ["predict", "--run", str(evaluated_run), str(outlier_files["blank"]), "--json"]
    result = CliRunner().invoke(cli, [*args, "--allow-ood", "--cam-dir", str(tmp_path)])
    (line,) = json_lines(result.stdout)
    assert line["decisions"]["image"] in ("normal", "diseased")
    assert line["trust"]["flagged"] and not line["trust"]["refused"]
    assert "out of distribution" in result.stderr
    (refused,) = json_lines(CliRunner().invoke(cli, args).stdout)
    assert refused["decisions"] == {"image": None} and refused["trust"]["refused"]


def test_lateral_film_refused_by_heads_trained_on_frontal_films(frontal_run, outlier_files):
    (lateral,) = predict_files(frontal_run, [outlier_files["lateral"]])
    assert lateral.decisions == {"image": None} and lateral.trust["refused"]
    assert lateral.trust["reasons"]
    result = CliRunner().invoke(
        cli, ["predict", "--run", str(frontal_run), str(outlier_files["lateral"])]
    )
    assert "no decision:" in result.stdout and "warning" in result.stderr


def test_the_view_check_alone_refuses_a_lateral_film(frontal_run, outlier_files, tmp_path):
    """Without the OOD guard (a run evaluated before it existed) the real path's view inference
    still tells the lateral film and refuses it for heads that saw frontal films only."""
    run = tmp_path / "no-guard"
    shutil.copytree(frontal_run, run, ignore=shutil.ignore_patterns("ood"))
    (lateral,) = predict_files(run, [outlier_files["lateral"]])
    assert lateral.trust["ood"] is None and lateral.trust["refused"]
    assert lateral.decisions == {"image": None}
    (reason,) = lateral.trust["reasons"]
    assert reason.startswith("lateral view (P(frontal) 0.")
    assert reason.endswith("the heads were trained on frontal views only")


def test_explain_image_refuses_too(evaluated_run, outlier_files, tmp_path):
    command = ["explain", "--run", str(evaluated_run), "--image", str(outlier_files["photo"])]
    result = CliRunner().invoke(cli, [*command, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "no decision: out of distribution" in result.stdout
    assert not list(tmp_path.glob("*.png"))  # no heat map for a refused image
    (saved,) = tmp_path.glob("*.json")
    assert json.loads(saved.read_text())["probability_diseased"] is None
    allowed = CliRunner().invoke(cli, [*command, "--out", str(tmp_path), "--allow-ood"])
    assert "P(diseased)" in allowed.stdout and list(tmp_path.glob("*.png"))


def test_a_run_without_a_guard_predicts_with_a_note(evaluated_run, xray_files, tmp_path):
    run = tmp_path / "old-run"
    shutil.copytree(evaluated_run, run, ignore=shutil.ignore_patterns("ood"))
    result = CliRunner().invoke(cli, ["predict", "--run", str(run), str(xray_files["png"])])
    assert result.exit_code == 0, result.output
    assert NOT_FITTED in result.stderr and "→" in result.stdout
    (found,) = predict_files(run, [xray_files["png"]])
    assert found.trust["ood"] is None and found.trust["notes"] == [NOT_FITTED]


def test_frontal_zones_follow_the_film_and_skip_padding_bars(evaluated_run, xray_files):
    predictor = Predictor.load(evaluated_run)
    image = predictor.read(xray_files["png"])
    padded = fit_square(image[:, 12:52], 64, "pad")  # a portrait film: bars left and right
    found = predictor.predict(padded, drafts=0, allow_ood=True)
    assert found.zones is not None
    inside = ~found.zones.masks[OUTSIDE]
    assert inside.any() and not inside[:, :8].any() and not inside[:, -8:].any()
    assert sum(found.zone_masses.values()) == pytest.approx(1.0)
    frontal = predictor.predict(image, drafts=0)
    assert frontal.zones.source == "anatomy" and np.isclose(sum(frontal.zone_masses.values()), 1)
