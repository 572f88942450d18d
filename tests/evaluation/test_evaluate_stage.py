"""evaluate + report on the tiny CLIP and its heads: outputs, schema, honesty checks."""

import html
import json
import re
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import auc

from chestclip.config import load_run_config
from chestclip.evaluation import figures
from chestclip.evaluation.evaluate import evaluate, write_figures
from chestclip.evaluation.report import write_report
from chestclip.evaluation.schema import validate_metrics
from chestclip.utils.run_layout import RunLayout

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def evaluated_run(probed_run, prepared_phantoms):
    run, _ = probed_run
    document = evaluate(run, prepared_phantoms, load_run_config("tiny"), n_boot=200)
    return run, document


def test_metrics_document(evaluated_run):
    run, document = evaluated_run
    assert validate_metrics(json.loads((run / "eval/metrics.json").read_text())) == []
    heads = document["heads"]
    assert {"multimodal", "image", "text", "multimodal_indication", "text_indication"} <= set(heads)
    assert {"bag-of-words_indication+findings", "bag-of-words_indication"} <= set(heads)
    for result in heads.values():
        assert result["threshold"]["chosen_on"] == "validation"
        for level in ("image", "study"):
            auc = result["levels"][level]["metrics"]["roc_auc"]
            assert auc["ci_low"] <= auc["value"] <= auc["ci_high"]
    assert heads["image"]["levels"]["image"]["metrics"]["roc_auc"]["value"] > 0.6


def test_head_versus_head_claims_are_paired_differences_with_intervals(evaluated_run):
    run, document = evaluated_run
    pairs = {(c["head"], c["reference"]): c for c in document["comparisons"]}
    assert {
        ("multimodal", "bag-of-words_indication+findings"),
        ("multimodal", "image"),
        ("multimodal", "text"),
        ("multimodal_indication", "bag-of-words_indication"),
        ("multimodal_indication", "image"),
    } <= set(pairs)
    heads = document["heads"]
    for (head, reference), comparison in pairs.items():
        for level in ("image", "study"):
            difference = comparison["levels"][level]
            auc = (
                heads[n]["levels"][level]["metrics"]["roc_auc"]["value"] for n in (head, reference)
            )
            assert difference["value"] == pytest.approx(next(auc) - next(auc))
            assert difference["ci_low"] <= difference["value"] <= difference["ci_high"]
            assert difference["n_boot"] == 200 and difference["unit"] == "patient (uid)"
    for warning in document["warnings"]:
        if warning.startswith("RED FLAG"):
            head = warning.split()[2]
            bag = pairs[(head, f"bag-of-words_{'+'.join(heads[head]['text_fields'])}")]
            assert bag["levels"]["image"]["ci_high"] < 0
    page = write_report(run).read_text()
    assert "paired ROC-AUC differences" in page and "multimodal_indication" in page


def test_report_shows_every_paired_difference_with_its_interval(evaluated_run):
    run, document = evaluated_run
    page = write_report(run).read_text()
    section = page.split("paired ROC-AUC differences</h2>")[1].split("<h2>")[0]
    rows = {
        (head, reference): re.findall(r"<td[^>]*>(.*?)</td>", cells)
        for head, reference, cells in re.findall(
            r"<tr><td>(.*?)</td><td>(.*?)</td><td>.*?</td>(.*?)</tr>", section
        )
    }
    assert len(rows) == len(document["comparisons"]) >= 5
    for comparison in document["comparisons"]:
        expected = []
        for level in ("image", "study"):
            difference = comparison["levels"][level]
            low, high = difference["ci_low"], difference["ci_high"]
            expected += [
                f"{difference['value']:+.3f} ({low:+.3f} to {high:+.3f})".replace("-", "−"),
                "yes" if low > 0 or high < 0 else "no",
            ]
        assert rows[(html.escape(comparison["head"]), html.escape(comparison["reference"]))] == (
            expected
        )


def test_leakage_is_flagged(evaluated_run):
    _, document = evaluated_run
    heads = document["heads"]
    assert (
        heads["multimodal"]["text_leaks_findings"]
        and not heads["multimodal_indication"]["text_leaks_findings"]
    )
    assert any(
        w.startswith("multimodal:") and "not reading the X-ray" in w for w in document["warnings"]
    )
    assert not any(w.startswith("multimodal_indication:") for w in document["warnings"])


def test_predictions_and_figures(evaluated_run, prepared_phantoms):
    run, document = evaluated_run
    predictions = pd.read_csv(run / "eval/predictions.csv")
    assert set(predictions["split"]) == {"val", "test"}
    assert {"image_id", "uid", "label", *document["heads"]} <= set(predictions.columns)
    test_images = pd.read_csv(prepared_phantoms / "images.csv").query("split == 'test'")
    assert (predictions["split"] == "test").sum() == len(test_images)
    for name in (
        "roc.png",
        "confusion.png",
        "modality_auc.png",
        "reliability.png",
        "clip_loss.png",
    ):
        assert (run / "plots" / name).stat().st_size > 5000, name


def test_report_is_self_contained_and_has_every_plot(evaluated_run):
    run, document = evaluated_run
    page = write_report(run).read_text()
    assert page.count("data:image/png;base64,") == len(list((run / "plots").glob("*.png")))
    assert 'src="http' not in page and "<script" not in page
    assert "not a medical device" in page and "Explanations" in page
    for name in document["heads"]:
        assert name in page


def test_threshold_ignores_test_labels(evaluated_run, prepared_phantoms, tmp_path):
    run, document = evaluated_run
    permuted = tmp_path / "prepared"
    shutil.copytree(prepared_phantoms, permuted)
    studies = pd.read_csv(permuted / "studies.csv", dtype={"uid": str}, keep_default_na=False)
    test = studies["split"] == "test"
    studies.loc[test, "label"] = np.random.default_rng(0).permutation(
        studies.loc[test, "label"].to_numpy()
    )
    studies.to_csv(permuted / "studies.csv", index=False)
    images = pd.read_csv(permuted / "images.csv", dtype={"uid": str})
    images["label"] = images["uid"].map(studies.set_index("uid")["label"])
    images.to_csv(permuted / "images.csv", index=False)
    other_run = tmp_path / "run"
    shutil.copytree(run, other_run)
    again = evaluate(other_run, permuted, load_run_config("tiny"), n_boot=0)
    for name in ("multimodal", "image", "text"):
        assert again["heads"][name]["threshold"] == document["heads"][name]["threshold"]


def test_finetuned_baseline_joins_the_evaluation(evaluated_run, prepared_phantoms, tmp_path):
    from chestclip.training.finetune import finetune_image_baseline

    run, _ = evaluated_run
    other_run = tmp_path / "run"
    shutil.copytree(run, other_run)
    finetune_image_baseline(
        prepared_phantoms, other_run, load_run_config("tiny", ["pretrain.epochs=2"])
    )
    document = evaluate(other_run, prepared_phantoms, load_run_config("tiny"), n_boot=0)
    assert document["heads"]["image-finetuned"]["features"] == "image (fine-tuned)"
    assert document["heads"]["image-finetuned"]["text_fields"] is None


def test_the_figures_plot_the_reported_numbers(evaluated_run, monkeypatch, tmp_path):
    """What each figure draws is what metrics.json reports: the area under every plotted ROC
    curve, every bar's height and error bar, every confusion count."""
    run, document = evaluated_run
    drawn = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: drawn.update({path.stem: fig}))
    predictions = pd.read_csv(run / "eval/predictions.csv", dtype={"uid": str})
    heads = document["heads"]
    write_figures(RunLayout(tmp_path), predictions.query("split == 'test'"), heads)
    aucs = {name: h["levels"]["image"]["metrics"]["roc_auc"] for name, h in heads.items()}

    (roc,) = drawn["roc"].axes
    curves = {line.get_label().split(" (AUC")[0]: line.get_data() for line in roc.get_lines()}
    for name, metric in aucs.items():
        assert auc(*curves[name]) == pytest.approx(metric["value"], abs=1e-6), name

    (bars,) = drawn["modality_auc"].axes
    assert [bar.get_height() for bar in bars.patches] == pytest.approx(
        [metric["value"] for metric in aucs.values()], abs=1e-6
    )
    (error_bars,) = bars.collections  # one segment per bar, from the CI's low to its high end
    ends = np.array([segment[:, 1] for segment in error_bars.get_segments()])
    expected = np.array([(m["ci_low"], m["ci_high"]) for m in aucs.values()])
    np.testing.assert_allclose(ends, expected, atol=1e-6)

    for panel, (name, head) in zip(drawn["confusion"].axes, heads.items(), strict=True):
        counts = [int(text.get_text()) for text in panel.texts]
        assert counts == np.ravel(head["levels"]["image"]["confusion"]).tolist(), name
    for figure in drawn.values():
        plt.close(figure)
