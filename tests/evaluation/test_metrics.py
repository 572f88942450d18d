import math

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from chestclip.evaluation.metrics import (
    METRIC_NAMES,
    binary_metrics,
    choose_threshold,
    confusion,
    expected_calibration_error,
    per_study,
    reliability_bins,
)


@pytest.fixture
def fixed_inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1).round(2)  # rounded: many ties
    return labels, scores


def test_every_metric_equals_scikit_learn(fixed_inputs):
    labels, scores = fixed_inputs
    threshold = 0.47
    predicted = (scores >= threshold).astype(int)
    metrics = binary_metrics(labels, scores, threshold)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, labels=[0, 1])
    expected = {
        "accuracy": accuracy_score(labels, predicted),
        "balanced_accuracy": balanced_accuracy_score(labels, predicted),
        "roc_auc": roc_auc_score(labels, scores),
        "pr_auc": average_precision_score(labels, scores),
        "brier": brier_score_loss(labels, scores),
        "precision_normal": precision[0],
        "recall_normal": recall[0],
        "f1_normal": f1[0],
        "precision_diseased": precision[1],
        "recall_diseased": recall[1],
        "f1_diseased": f1[1],
        "specificity": recall[0],
        "sensitivity": recall[1],
        "accuracy_normal": recall[0],
        "accuracy_diseased": recall[1],
    }
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-12), name
    assert set(METRIC_NAMES) <= set(metrics)
    assert metrics["n"] == 300 and metrics["n_positive"] == labels.sum()
    (tn, fp), (fn, tp) = confusion(labels, scores, threshold)
    assert [[tn, fp], [fn, tp]] == confusion_matrix(labels, predicted).tolist()
    assert metrics["specificity"] == tn / (tn + fp) and metrics["sensitivity"] == tp / (tp + fn)


def test_ece_hand_example():
    # bins: 0.05 → bin 0 (gap 0.05), two × 0.15 → bin 1 (observed 0.5, gap 0.35), 0.95 → bin 9
    labels, scores = [0, 0, 1, 1], [0.05, 0.15, 0.15, 0.95]
    assert expected_calibration_error(labels, scores) == pytest.approx((0.05 + 2 * 0.35 + 0.05) / 4)
    assert binary_metrics(labels, scores, 0.5)["ece"] == pytest.approx(0.2)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0


def test_reliability_bins_match_calibration_curve(fixed_inputs):
    labels, scores = fixed_inputs
    bins = reliability_bins(labels, scores)
    assert len(bins) == 10 and bins["count"].sum() == len(labels)
    prob_true, prob_pred = calibration_curve(labels, scores, n_bins=10)
    filled = bins[bins["count"] > 0]
    np.testing.assert_allclose(filled["observed_frequency"], prob_true)
    np.testing.assert_allclose(filled["mean_predicted"], prob_pred)


def test_youden_hand_example():
    # negatives 0.1 0.2 0.3 0.65, positives 0.5 … 0.9: J = 1 − 1/4 at 0.5 beats 3/5 − 0 at 0.7
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.65, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert choose_threshold(labels, scores) == 0.5
    assert choose_threshold(labels, scores, "fixed", fixed=0.3) == 0.3
    # two thresholds tie on J = 0.5 (0.8 and 0.35): the higher one wins, whatever the order
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.8
    assert choose_threshold([1, 1, 0, 0], [0.8, 0.35, 0.4, 0.1]) == 0.8


def test_youden_is_independent_of_sample_order(fixed_inputs):
    labels, scores = fixed_inputs  # rounded scores: many ties across classes
    threshold = choose_threshold(labels, scores)
    rng = np.random.default_rng(0)
    for _ in range(5):
        order = rng.permutation(len(labels))
        assert choose_threshold(labels[order], scores[order]) == threshold


def test_bad_input_is_rejected_clearly():
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        binary_metrics([0, 2], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="equally long"):
        binary_metrics([0, 1, 1], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics([0, 1], [0.1, np.nan], 0.5)
    with pytest.raises(ValueError, match="probabilities"):
        binary_metrics([0, 1], [0.1, 1.2], 0.5)
    with pytest.raises(ValueError, match="both"):
        choose_threshold([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="method"):
        choose_threshold([0, 1], [0.1, 0.2], "otsu")


def test_single_class_input_gives_nan_not_a_crash():
    metrics = binary_metrics([0, 0, 0, 0], [0.1, 0.2, 0.6, 0.7], 0.5)
    for name in ("roc_auc", "pr_auc", "balanced_accuracy", "sensitivity", "recall_diseased"):
        assert math.isnan(metrics[name]), name
    assert metrics["specificity"] == 0.5 and metrics["accuracy"] == 0.5
    assert metrics["n_positive"] == 0
    assert confusion([1, 1], [0.2, 0.9], 0.5) == [[0, 0], [1, 1]]


def test_per_study_averages_views():
    frame = pd.DataFrame(
        {
            "uid": ["b", "a", "a", "b", "c"],
            "label": [1, 0, 0, 1, 1],
            "image_score": [0.9, 0.2, 0.4, 0.7, 0.5],
            "text_score": [1.0, 0.0, 0.5, 0.0, 0.25],
        }
    )
    studies = per_study(frame, ["image_score", "text_score"])
    assert studies["uid"].tolist() == ["a", "b", "c"]
    assert studies["label"].tolist() == [0, 1, 1]
    assert studies["n_images"].tolist() == [2, 2, 1]
    np.testing.assert_allclose(studies["image_score"], [0.3, 0.8, 0.5])
    np.testing.assert_allclose(studies["text_score"], [0.25, 0.5, 0.25])
    with pytest.raises(ValueError, match="conflicting labels"):
        per_study(frame.assign(label=[1, 0, 1, 1, 1]), "image_score")
