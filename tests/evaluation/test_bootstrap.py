import math

import numpy as np
import pytest

from chestclip.evaluation.metrics import (
    METRIC_NAMES,
    _weighted_metrics,
    binary_metrics,
    bootstrap_ci,
    bootstrap_replicates,
)


def _width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


def test_vectorised_replicates_equal_scikit_learn_on_explicit_resamples(scored):
    frame = scored(60, images_per_patient=3, seed=4)
    labels, scores = frame["label"].to_numpy(), frame["score"].round(2).to_numpy()  # ties
    rng = np.random.default_rng(1)
    weights = rng.integers(0, 3, size=(8, len(labels)))  # [B, N] multiplicities = a resample
    vectorised = _weighted_metrics(labels, scores, 0.5, weights)
    for b, w in enumerate(weights):
        expected = binary_metrics(np.repeat(labels, w), np.repeat(scores, w), 0.5)
        for name in METRIC_NAMES:
            assert vectorised[name][b] == pytest.approx(expected[name], abs=1e-12), name


def test_interval_contains_point_estimate_and_narrows_with_n(scored):
    widths = {}
    for n_patients in (200, 2000):
        frame = scored(n_patients, seed=n_patients)
        labels, scores, uids = frame["label"], frame["score"], frame["uid"]
        point = binary_metrics(labels, scores, 0.5)
        intervals = bootstrap_ci(labels, scores, uids, 0.5, n_boot=500, seed=0)
        assert set(intervals) == set(METRIC_NAMES)
        for name, (low, high) in intervals.items():
            assert low <= point[name] <= high, (n_patients, name)
        widths[n_patients] = {name: _width(ci) for name, ci in intervals.items()}
    for name in ("accuracy", "roc_auc", "pr_auc", "sensitivity", "specificity", "brier"):
        # the width shrinks like 1/sqrt(n): about 3.2× from 200 to 2000 patients
        assert widths[2000][name] < widths[200][name] / 2, name


def test_resamples_whole_patients(scored):
    # 10 identical images per patient: the information is that of 50 patients, not 500 images
    patients = scored(50, images_per_patient=1, seed=7)
    images = patients.loc[patients.index.repeat(10)]
    labels, scores = images["label"], images["score"]
    by_patient = bootstrap_ci(labels, scores, images["uid"], 0.5, n_boot=400, seed=0)
    by_image = bootstrap_ci(labels, scores, None, 0.5, n_boot=400, seed=0)
    for name in ("accuracy", "roc_auc", "sensitivity", "brier"):
        assert _width(by_patient[name]) > 2 * _width(by_image[name]), name
    # and resampling the patients of the deduplicated table gives exactly the same replicates
    duplicated = bootstrap_replicates(labels, scores, images["uid"], 0.5, n_boot=50, seed=3)
    single = bootstrap_replicates(
        patients["label"], patients["score"], patients["uid"], 0.5, n_boot=50, seed=3
    )
    np.testing.assert_allclose(duplicated.to_numpy(), single.to_numpy(), atol=1e-12)


def test_deterministic_for_a_seed_and_independent_of_row_order(scored):
    frame = scored(80, seed=2)
    args = (frame["label"], frame["score"], frame["uid"], 0.5)
    first = bootstrap_replicates(*args, n_boot=100, seed=5)
    np.testing.assert_array_equal(first, bootstrap_replicates(*args, n_boot=100, seed=5))
    assert not np.allclose(first, bootstrap_replicates(*args, n_boot=100, seed=6), equal_nan=True)
    shuffled = frame.sample(frac=1, random_state=0)
    again = bootstrap_replicates(
        shuffled["label"], shuffled["score"], shuffled["uid"], 0.5, n_boot=100, seed=5
    )
    np.testing.assert_allclose(first, again, atol=1e-12)


def test_single_class_resamples_are_skipped_for_auc():
    # 2 diseased patients among 12: some resamples draw no diseased patient at all
    labels = np.array([1, 1] + [0] * 10)
    scores = np.linspace(0.05, 0.95, 12)[::-1]
    replicates = bootstrap_replicates(labels, scores, None, 0.5, n_boot=300, seed=0)
    skipped = int(replicates["roc_auc"].isna().sum())
    assert 0 < skipped < 300
    assert replicates["accuracy"].notna().all()
    intervals = bootstrap_ci(labels, scores, None, 0.5, n_boot=300, seed=0)
    assert all(not math.isnan(v) for v in intervals["roc_auc"])


def test_single_class_input_gives_nan_intervals():
    intervals = bootstrap_ci([0, 0, 0], [0.1, 0.6, 0.3], None, 0.5, n_boot=50)
    assert all(math.isnan(v) for v in intervals["roc_auc"])
    assert intervals["specificity"][0] <= intervals["specificity"][1]
