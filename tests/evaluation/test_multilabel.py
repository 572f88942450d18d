"""Per-finding metrics, thresholds, macro/micro means and patient-bootstrap CIs on hand-computed
examples."""

import numpy as np
import pandas as pd
import pytest

from chestclip.evaluation.metrics import bootstrap_ci
from chestclip.evaluation.multilabel import evaluate_findings, finding_thresholds

NAN = np.nan
# test rows (one per image), patients P1..P5
TEST_TARGETS = pd.DataFrame({
    "A": [1, 1, 0, 0, NAN],       # row 5 masked
    "B": [0, 0, 0, 1, 0],         # one positive
    "C": [1, 0, 1, 0, 0],
    "D": [1, 0, 1, 0, 0],
})  # fmt: skip
TEST_SCORES = pd.DataFrame({
    "A": [0.9, 0.4, 0.6, 0.1, 0.5],
    "B": [0.5, 0.4, 0.3, 0.2, 0.1],
    "C": [0.8, 0.7, 0.3, 0.2, 0.1],
    "D": [0.6, 0.5, 0.4, 0.3, 0.2],
})  # fmt: skip
VAL_TARGETS = pd.DataFrame({"A": [1, 0, NAN], "B": [1, 0, 0], "C": [1, 0, 0], "D": [0, 0, 0]})
VAL_SCORES = pd.DataFrame({"A": [0.7, 0.3, 0.9], "B": [0.6, 0.2, 0.1], "C": [0.5, 0.4, 0.6],
                           "D": [0.5, 0.5, 0.5]})  # fmt: skip
PATIENTS = ["P1", "P2", "P3", "P4", "P5"]


@pytest.fixture(scope="module")
def result():
    return evaluate_findings(VAL_TARGETS, VAL_SCORES, TEST_TARGETS, TEST_SCORES, PATIENTS,
                             n_boot=300, seed=1, min_positives=2)  # fmt: skip


def test_thresholds_come_from_validation_only():
    thresholds = finding_thresholds(VAL_TARGETS, VAL_SCORES)
    # A: masked row ignored, Youden's J = 1 at 0.7; C: 0.6 is a negative, so 0.5 maximises J
    assert thresholds == {"A": 0.7, "B": 0.6, "C": 0.5, "D": None}  # D: negatives only


def test_per_finding_values(result):
    a = result["findings"]["A"]
    assert (a["n"], a["n_positive"], a["n_masked"], a["status"]) == (4, 2, 1, "ok")
    metrics = {name: m["value"] for name, m in a["metrics"].items()}
    # positives 0.9, 0.4 vs negatives 0.6, 0.1: 3 of 4 pairs ordered; AP = (1 + 2/3) / 2
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["pr_auc"] == pytest.approx(5 / 6)
    # threshold 0.7: TP 1 (0.9), FN 1 (0.4), TN 2
    assert (metrics["sensitivity"], metrics["specificity"], metrics["precision"]) == (0.5, 1, 1)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert result["findings"]["C"]["metrics"]["roc_auc"]["value"] == pytest.approx(5 / 6)


def test_findings_that_cannot_be_averaged_are_reported_with_a_reason(result):
    b, d = result["findings"]["B"], result["findings"]["D"]
    assert (b["status"], b["reason"]) == ("too_few_positives", "1 positives in test (fewer than 2)")
    assert d["status"] == "no_threshold" and d["threshold"]["value"] is None
    assert d["metrics"]["roc_auc"]["value"] == pytest.approx(5 / 6)  # still measured (0.4 < 0.5)
    assert d["metrics"]["sensitivity"]["value"] is None  # no threshold, no decision metrics
    assert set(result["excluded"]) == {"B", "D"}
    assert result["macro"]["findings"] == ["A", "C"]


def test_macro_and_micro_means(result):
    assert result["macro"]["roc_auc"]["value"] == pytest.approx((0.75 + 5 / 6) / 2)
    # pooled A and C: 4 positives (0.9, 0.4, 0.8, 0.3) vs 5 negatives (0.6, 0.1, 0.7, 0.2, 0.1):
    # 5 + 3 + 5 + 3 = 16 of 20 pairs ordered
    assert result["micro"]["roc_auc"]["value"] == pytest.approx(0.8)
    for block in (result["macro"], result["micro"]):
        low, high = block["roc_auc"]["ci_low"], block["roc_auc"]["ci_high"]
        assert 0 <= low <= high <= 1


def test_intervals_are_the_existing_patient_bootstrap(result):
    # C has no masked row: its draws are exactly those of metrics.bootstrap_ci on the same patients
    expected = bootstrap_ci(TEST_TARGETS["C"], TEST_SCORES["C"], PATIENTS, 0.5, n_boot=300, seed=1)
    c = result["findings"]["C"]["metrics"]
    assert (c["roc_auc"]["ci_low"], c["roc_auc"]["ci_high"]) == pytest.approx(expected["roc_auc"])
    assert (c["f1"]["ci_low"], c["f1"]["ci_high"]) == pytest.approx(expected["f1_diseased"])


def test_bootstrap_resamples_patients_not_images():
    targets = pd.concat([TEST_TARGETS] * 2, ignore_index=True)
    scores = pd.concat([TEST_SCORES] * 2, ignore_index=True)
    args = (VAL_TARGETS, VAL_SCORES, targets, scores)
    per_image = evaluate_findings(*args, list(range(10)), n_boot=300, min_positives=2)
    per_patient = evaluate_findings(*args, PATIENTS * 2, n_boot=300, min_positives=2)
    assert per_patient["findings"]["C"]["n_patients"] == 5

    def width(r):
        return r["macro"]["roc_auc"]["ci_high"] - r["macro"]["roc_auc"]["ci_low"]

    assert width(per_patient) > width(per_image)  # duplicated images are not independent


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="0, 1 or NaN"):
        evaluate_findings(VAL_TARGETS, VAL_SCORES, TEST_TARGETS * 2, TEST_SCORES, PATIENTS)
    with pytest.raises(ValueError, match="test_groups has 3 entries for 5 rows"):
        evaluate_findings(VAL_TARGETS, VAL_SCORES, TEST_TARGETS, TEST_SCORES, PATIENTS[:3])
