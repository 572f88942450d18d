"""The OOD guard's maths and files on small synthetic data: every score, the validation-quantile
thresholds, the combined score, saving without pickle, and runs without a guard."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from chestclip.errors import ChestClipError
from chestclip.inference.ood import (
    COMBINED,
    GUARD_FILE,
    METHODS,
    NOT_FITTED,
    OODGuard,
    energy,
    guard_dir,
    knn_distance,
)
from chestclip.inference.trust import Verdict, trained_views
from chestclip.inference.view_check import ViewCheck


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def split(rng: np.random.Generator, n: int, centre: np.ndarray) -> tuple[np.ndarray, ...]:
    """Images (a bright disc on a dark square, varied), unit embeddings near ``centre``, labels,
    logits."""
    ys, xs = np.mgrid[0:32, 0:32]
    images = np.stack(
        [
            ((np.hypot(ys - 16 - dy, xs - 16 - dx) < 9) * rng.uniform(150, 220)).astype(np.uint8)
            for dy, dx in rng.normal(0, 1.5, (n, 2))
        ]
    )
    embeddings = unit(centre + 0.2 * rng.standard_normal((n, centre.size)))
    labels = rng.integers(0, 2, n)
    logits = np.column_stack([labels * 2.0 - 1, 1 - labels * 2.0]).astype(np.float32)
    return images, embeddings, labels, logits


@pytest.fixture(scope="module")
def fitted() -> tuple[OODGuard, tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(0)
    centre = np.ones(8)
    images, embeddings, labels, logits = split(rng, 300, centre)
    val = split(rng, 400, centre)
    return OODGuard.fit((images, embeddings, labels, logits), (val[0], val[1], val[3])), val


def test_knn_distance_is_the_kth_nearest_cosine_distance():
    rng = np.random.default_rng(1)
    reference, queries = unit(rng.standard_normal((50, 6))), unit(rng.standard_normal((4, 6)))
    expected = [1 - np.sort(reference @ q)[::-1][9] for q in queries]
    np.testing.assert_allclose(knn_distance(reference, queries, k=10), expected, atol=1e-6)
    np.testing.assert_allclose(knn_distance(reference, reference[:3], k=1), 0, atol=1e-6)


def test_energy_is_minus_logsumexp():
    logits = np.array([[1.0, 2.0], [-30.0, 40.0]], dtype=np.float32)
    np.testing.assert_allclose(energy(logits), -torch.logsumexp(torch.tensor(logits), 1), rtol=1e-6)


def test_thresholds_refuse_one_percent_of_validation(fitted):
    guard, _ = fitted
    assert set(guard.thresholds) == {*METHODS, *COMBINED}
    for name, share in guard.meta["validation_refused"].items():
        assert share <= 0.011, name
    assert guard.method == "pixels+mahalanobis"


def test_unlike_inputs_score_above_every_threshold(fitted):
    guard, val = fitted
    inside = guard.check(val[0][0], val[1][0], val[3][0])
    assert not inside.out_of_distribution and inside.reason is None
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    far = unit(-np.ones((1, 8)))[0]
    for name in ("knn", "mahalanobis", "pixels", "pixels+mahalanobis"):
        guard.method = name
        check = guard.check(photo, far, np.zeros(2, np.float32))
        assert check.out_of_distribution and "out of distribution" in check.reason, name
    guard.method = "pixels+mahalanobis"


def test_combined_score_is_the_larger_member_over_its_threshold(fitted):
    guard, val = fitted
    found = guard.scores(val[0][:5], val[1][:5], val[3][:5])
    expected = np.maximum(
        found["pixels"] / guard.thresholds["pixels"],
        found["mahalanobis"] / guard.thresholds["mahalanobis"],
    )
    np.testing.assert_allclose(found["pixels+mahalanobis"], expected, rtol=1e-6)


def test_saved_guard_loads_the_same_without_pickle(fitted, tmp_path):
    guard, val = fitted
    guard.save(tmp_path, {"data": "somewhere"})
    files = sorted(p.name for p in guard_dir(tmp_path).iterdir())
    assert files == [GUARD_FILE, "reference.safetensors"]
    document = json.loads((guard_dir(tmp_path) / GUARD_FILE).read_text())
    assert document["method"] == guard.method and document["data"] == "somewhere"
    loaded = OODGuard.load(tmp_path)
    assert loaded.thresholds == guard.thresholds
    np.testing.assert_array_equal(
        loaded.scores(val[0][:3], val[1][:3], val[3][:3])["knn"],
        guard.scores(val[0][:3], val[1][:3], val[3][:3])["knn"],
    )


def test_a_run_without_a_guard_and_a_damaged_one(tmp_path):
    assert OODGuard.load(tmp_path) is None
    guard_dir(tmp_path).mkdir()
    (guard_dir(tmp_path) / GUARD_FILE).write_text('{"method": "knn"}')
    with pytest.raises(ChestClipError, match=r"damaged OOD guard.*rerun `chestclip evaluate`"):
        OODGuard.load(tmp_path)


def test_trained_views_from_head_json_or_the_prepared_data():
    both = {"Frontal": 10, "Lateral": 8}
    assert trained_views([{"views": both}], {}) == {"Frontal", "Lateral"}
    assert trained_views([{"views": {"Frontal": 10}}, {"views": both}], {}) == {"Frontal"}
    assert trained_views([{"views": {"Frontal": 3, "unknown": 2}}], {}) == {"Frontal", "Lateral"}
    assert trained_views([{}], {"views": "frontal"}) == {"Frontal"}
    assert trained_views([{}], {"views": "all"}) == {"Frontal", "Lateral"}


def test_verdict_refuses_a_view_the_heads_never_saw_unless_allowed():
    lateral, frontal_only = ViewCheck("Lateral", 0.03), frozenset({"Frontal"})
    verdict = Verdict(None, lateral, frontal_only)
    assert verdict.refused and not verdict.frontal
    assert verdict.reasons == [
        "lateral view (P(frontal) 0.03); the heads were trained on frontal views only"
    ]
    assert verdict.notes[0] == NOT_FITTED and "no lung-zone analysis" in verdict.notes[1]
    allowed = Verdict(None, lateral, frontal_only, allow_ood=True)
    assert allowed.flagged and not allowed.refused
    assert not Verdict(None, lateral, frozenset({"Frontal", "Lateral"})).flagged
    assert Verdict(None, None, frontal_only).frontal  # a view that cannot be told: zones apply
