"""Faithfulness and localisation metrics, on the hand-built ViT lesion detector (see conftest):
its score reads only patches brighter than mid-grey, so the lesion mask is a perfect map."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from chestclip.explain import (
    area_fraction,
    cascading_randomisation,
    energy_in_lesion,
    explain,
    faithfulness,
    head_score,
    perturbation_curve,
    pointing_hit,
    randomisation_check,
    randomised_copy,
    rank_correlations,
    topk_iou,
)
from chestclip.explain.faithfulness import cell_index, perturbation_reference, saliency_order

GRID = (8, 8)


@pytest.mark.parametrize("baseline", ["mean", "blur"])
def test_an_oracle_map_beats_a_random_order(vit_detector, lesion, baseline):
    model, head = vit_detector
    probability = head_score(model, head, "image", probability=True)
    oracle = lesion.mask.astype(np.float32)
    result = faithfulness(
        lesion.pixels, oracle, probability, GRID, baseline, seed=0, repeats=3, steps=16
    )
    assert result.deletion.auc < result.random_deletion.auc
    assert result.insertion.auc > result.random_insertion.auc


def test_curves_run_from_the_image_to_its_reference(vit_detector, lesion):
    model, head = vit_detector
    probability = head_score(model, head, "image", probability=True)
    order = saliency_order(lesion.mask.astype(float), GRID)
    deletion = perturbation_curve(lesion.pixels, order, probability, GRID, "deletion", "mean")
    insertion = perturbation_curve(lesion.pixels, order, probability, GRID, "insertion", "mean")
    with torch.no_grad():
        original = probability(lesion.pixels).item()
        removed = probability(perturbation_reference(lesion.pixels, "mean", GRID)).item()
    assert len(deletion.scores) == 65 and deletion.fractions[[0, -1]].tolist() == [0.0, 1.0]
    assert deletion.scores[[0, -1]] == pytest.approx([original, removed], abs=1e-5)
    assert insertion.scores[[0, -1]] == pytest.approx([removed, original], abs=1e-5)
    # the lesion's four cells come first: deleting them takes the score down to the reference's
    assert original > removed + 0.2 and deletion.scores[4] <= removed
    coarse = perturbation_curve(lesion.pixels, order, probability, GRID, "deletion", steps=4)
    assert coarse.fractions.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_saliency_order_and_cells():
    expected = [[0, 0, 1, 1]] * 2 + [[2, 2, 3, 3]] * 2 + [[4, 4, 5, 5]] * 2
    assert cell_index((6, 4), (3, 2)).tolist() == expected
    # uneven sizes: row edges 0, 2, 5, 7 and column edges 0, 2, 5 (rounded)
    assert np.bincount(cell_index((7, 5), (3, 2)).ravel()).tolist() == [4, 6, 6, 9, 4, 6]
    heatmap = np.zeros((6, 4))
    heatmap[4:, 2:] = 1.0  # cell 5
    heatmap[0:2, 0:2] = 0.5  # cell 0
    order = saliency_order(heatmap, (3, 2)).tolist()
    assert order[:2] == [5, 0] and sorted(order[2:]) == [1, 2, 3, 4]  # the tied zeros last
    with pytest.raises(ValueError, match="does not fit"):
        cell_index((4, 4), (8, 8))


def test_tied_cells_are_ordered_at_random_not_top_to_bottom():
    flat = np.zeros((8, 8))
    order = saliency_order(flat, (4, 4), seed=0)
    assert sorted(order.tolist()) == list(range(16)) and order.tolist() != list(range(16))
    assert order.tolist() == saliency_order(flat, (4, 4), seed=0).tolist()  # seeded
    assert order.tolist() != saliency_order(flat, (4, 4), seed=1).tolist()
    partly = np.zeros((8, 8))
    partly[6:, 6:] = 1.0  # cell 15 first, then the 15 tied cells in a random order
    order = saliency_order(partly, (4, 4), seed=0)
    assert order[0] == 15 and order[1:].tolist() != list(range(15))


def test_a_flat_map_deletes_no_faster_than_a_random_order():
    """A score that reads the top quarter of the image: deleting cells row by row (the old
    tie-break) would make a map that says nothing look faithful."""
    pixels = torch.zeros(1, 1, 64, 64)
    pixels[..., :16, :] = 1.0

    def top_quarter(images: torch.Tensor) -> torch.Tensor:
        return images[:, 0, :16, :].mean(dim=(1, 2))

    flat = np.zeros((64, 64), dtype=np.float32)
    result = faithfulness(pixels, flat, top_quarter, GRID, "mean", seed=0, repeats=8)
    # row by row: the 16 top cells go first, AUC ≈ 0.34; in random order it is 0.625 on average
    assert result.deletion.auc > 0.5
    assert result.deletion.auc == pytest.approx(result.random_deletion.auc, abs=0.12)


def test_blur_reference_keeps_flat_images_and_softens_edges(lesion):
    flat = torch.full((1, 1, 64, 64), 0.3)
    torch.testing.assert_close(perturbation_reference(flat, "blur", GRID), flat)
    blurred = perturbation_reference(lesion.pixels, "blur", GRID)
    assert blurred.shape == lesion.pixels.shape
    assert 0.5 < blurred.max() < 1.0 and blurred.mean() == pytest.approx(0.53, abs=0.01)
    with pytest.raises(ValueError, match="baseline"):
        perturbation_reference(flat, "noise", GRID)


def test_pointing_game_and_topk_iou_on_hand_made_masks():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:4, 2:4] = True  # 4 % of the image
    heatmap = np.zeros((10, 10))
    heatmap[3, 3] = 1.0
    assert pointing_hit(heatmap, mask)
    assert not pointing_hit(np.roll(heatmap, 5, axis=1), mask)
    tied = np.zeros((10, 10))
    tied[3, 3] = tied[8, 8] = 1.0  # one of the tied maxima is inside: a hit
    assert pointing_hit(tied, mask)
    exact = mask.astype(float)
    assert topk_iou(exact, mask, k=0.04) == 1.0
    assert topk_iou(exact + 0.0, mask, k=0.08) == pytest.approx(4 / 100)  # ties: all selected
    graded = np.arange(100, dtype=float).reshape(10, 10)
    assert topk_iou(graded, mask, k=0.04) == 0.0  # top 4 % is the last row's end
    assert area_fraction(mask) == pytest.approx(0.04)
    with pytest.raises(ValueError, match="empty"):
        pointing_hit(heatmap, np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="shape"):
        topk_iou(heatmap, np.ones((5, 5), bool))


def test_energy_in_lesion_against_its_chance_level():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:4, 2:4] = True
    assert energy_in_lesion(mask.astype(float), mask) == 1.0
    assert energy_in_lesion(np.ones((10, 10)), mask) == pytest.approx(area_fraction(mask))
    half = mask.astype(float)
    half[8, 8:] = 2.0  # 4 units inside, 4 outside
    assert energy_in_lesion(half, mask) == pytest.approx(0.5)
    assert energy_in_lesion(np.zeros((10, 10)), mask) == 0.0  # points nowhere
    with pytest.raises(ValueError, match="empty"):
        energy_in_lesion(half, np.zeros((10, 10), bool))


def test_randomisation_check_statistic():
    rng = np.random.default_rng(0)
    maps = [rng.random((8, 8)) for _ in range(3)]
    assert randomisation_check(maps, maps) == pytest.approx(1.0)
    assert randomisation_check(maps, [1 - m for m in maps]) == pytest.approx(-1.0)
    assert math.isnan(randomisation_check([np.zeros((8, 8))], [maps[0]]))  # flat: no ranks


@pytest.mark.parametrize("method", ["attention-gradcam", "gradcam", "rollout"])
def test_randomising_the_top_changes_maps_and_leaves_the_original(vit_detector, lesion, method):
    model, head = vit_detector
    before = {k: v.clone() for k, v in [*model.state_dict().items(), *head.state_dict().items()]}
    random_model, random_head = randomised_copy(model, head, n_layers=1, seed=0)
    trained = explain(model, lesion.pixels, head_score(model, head, "image"), method)
    randomised = explain(
        random_model, lesion.pixels, head_score(random_model, random_head, "image"), method
    )
    assert randomisation_check([trained], [randomised]) < 0.9
    after = [*model.state_dict().items(), *head.state_dict().items()]
    assert all(torch.equal(before[k], v) for k, v in after)
    again, _ = randomised_copy(model, head, n_layers=1, seed=0)
    torch.testing.assert_close(again.state_dict(), random_model.state_dict())  # seeded
    with pytest.raises(ValueError, match="n_layers"):
        randomised_copy(model, head, n_layers=3)


def test_the_cascade_randomises_from_the_head_down_one_block_at_a_time(vit_detector, lesion):
    """Adebayo et al. 2018: the head, then the projection, then each block from the top down,
    every step keeping the earlier ones randomised."""
    model, head = vit_detector
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head_before = {k: v.clone() for k, v in head.state_dict().items()}

    def randomised_parts(state: dict) -> list[str]:
        changed = [k for k, v in state.items() if not torch.equal(v, before[k])]
        parts = {
            "projection" if k.startswith("image_projection") else k.split(".")[3] for k in changed
        }
        return sorted(parts)

    trained = explain(model, lesion.pixels, head_score(model, head, "image"), "rollout")
    seen, correlations = [], []
    for step in cascading_randomisation(model, head, seed=0):
        assert not torch.equal(step.head.state_dict()["net.0.weight"], head_before["net.0.weight"])
        seen.append((step.name, step.blocks, randomised_parts(step.model.state_dict())))
        score = head_score(step.model, step.head, "image")
        correlations.append(
            rank_correlations([trained], [explain(step.model, lesion.pixels, score, "rollout")])[0]
        )
    assert seen == [
        ("head", 0, []),
        ("projection", 0, ["projection"]),
        ("block 2/2", 1, ["1", "projection"]),
        ("block 1/2", 2, ["0", "1", "projection"]),
    ]
    # rollout's map survives a random head and projection here (ρ = 1): what the cascade shows
    assert correlations[0] > 0.99 and correlations[-1] < 0.9
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
    # randomised_copy is the cascade stopped at a step, with the same seeded draws
    step = next(s for s in cascading_randomisation(model, head, seed=0) if s.blocks == 1)
    top, _ = randomised_copy(model, head, n_layers=1, seed=0)
    torch.testing.assert_close(top.state_dict(), step.model.state_dict())
