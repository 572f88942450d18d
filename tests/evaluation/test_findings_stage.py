"""The evaluate stage's multi-label part: findings.json validates against its schema, the
validator catches a finding averaged against its status, and the printed table shows every
finding's AUC with its CI, the means, and the findings a head could not learn."""

import copy

import numpy as np
import pandas as pd

from chestclip.evaluation.figures import plot_finding_aucs
from chestclip.evaluation.findings import findings_lines
from chestclip.evaluation.multilabel import evaluate_findings
from chestclip.evaluation.schema import FINDINGS_SCHEMA_VERSION, validate_findings
from chestclip.training.findings_probe import learnable_findings, target_arrays


def _document() -> dict:
    rng = np.random.default_rng(0)
    n = 60
    targets = pd.DataFrame({"Cardiomegaly": rng.integers(0, 2, n), "Edema": [1] * 3 + [0] * 57})
    scores = targets.astype(float) * 0.5 + rng.random((n, 2)) * 0.5
    patients = np.arange(n) // 2
    level = evaluate_findings(targets, scores, targets, scores, patients, n_boot=30, seed=0)
    return {
        "schema_version": FINDINGS_SCHEMA_VERSION,
        "created": "2026-01-01T00:00:00+00:00",
        "chestclip_version": "0",
        "data": {"splits": {}},
        "label_policy": {"uncertain": "ignore", "missing": "zeros"},
        "heads": {
            "findings/image": {
                "features": "image",
                "text_fields": None,
                "text_leaks_findings": False,
                "not_trained": {"Fracture": "no positive label in the training split"},
                "levels": {"image": level, "study": copy.deepcopy(level)},
            }
        },
        "warnings": [],
    }


def test_findings_document_validates_and_its_means_follow_the_status():
    document = _document()
    assert validate_findings(document) == []
    broken = copy.deepcopy(document)
    broken["heads"]["findings/image"]["levels"]["image"]["macro"]["findings"].append("Edema")
    assert validate_findings(broken) == [
        "heads.findings/image.levels.image.macro.findings: not the ok ones"
    ]
    del broken["label_policy"]
    assert validate_findings(broken) == ["(document): missing required key 'label_policy'"]


def test_printed_table_shows_each_finding_with_its_ci_and_reason():
    lines = findings_lines(_document())
    cardiomegaly = next(line for line in lines if "Cardiomegaly" in line)
    assert cardiomegaly.split()[-1] == "ok" and "(" in cardiomegaly and "–" in cardiomegaly
    edema = next(line for line in lines if "Edema" in line)
    assert edema.endswith("3 positives in test (fewer than 10)")
    assert any("macro ROC-AUC" in line and "over 1 finding" in line for line in lines)
    assert any("Fracture" in line and "not trained: no positive" in line for line in lines)


def test_only_findings_with_both_classes_in_training_are_learnt():
    train = pd.DataFrame({"a": [1, 0, np.nan], "b": [0, 0, 0], "c": [1, 1, np.nan]})
    assert learnable_findings(train) == (
        ["a"],
        {
            "b": "no positive label in the training split",
            "c": "no negative label in the training split",
        },
    )
    targets, mask = target_arrays(train[["a"]])
    assert targets.tolist() == [[1.0], [0.0], [0.0]] and mask.tolist() == [[True], [True], [False]]


def test_auc_figure_draws_an_interval_that_misses_its_point_estimate(tmp_path):
    # a percentile interval of few resamples can lie beside the point value (the DDP run hit it)
    aucs = {
        "findings/image": {"A": (0.62, 0.65, 0.9, "ok"), "B": (None, None, None, "no_threshold")}
    }
    plot_finding_aucs(aucs, tmp_path / "findings_auc.png")
    assert (tmp_path / "findings_auc.png").stat().st_size > 0
