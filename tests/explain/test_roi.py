"""Anatomical zones: a partition of the image, the PA side convention, mass shares."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chestclip.explain import ZONES, exclusive_masks, top_zones, zone_masks, zone_masses


@pytest.mark.parametrize("size", [(64, 64), (97, 131)])
def test_template_zones_partition_the_image(size):
    masks = zone_masks(*size)
    assert list(masks) == list(ZONES)
    coverage = np.sum([mask.astype(int) for mask in masks.values()], axis=0)
    np.testing.assert_array_equal(coverage, np.ones(size, dtype=int))
    assert all(masks[zone].any() for zone in ZONES)


def test_template_masses_sum_to_one():
    heatmap = np.random.default_rng(0).random((80, 80))
    masses = zone_masses(heatmap)
    assert set(masses) == set(ZONES)
    assert math.isclose(sum(masses.values()), 1.0)


def test_user_masks_overlap_and_leave_a_remainder_yet_sum_to_one():
    heatmap = np.random.default_rng(1).random((20, 20))
    lesion, lung = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    lesion[2:8, 2:8] = True
    lung[0:10, 0:10] = True  # contains the lesion; the first mask wins the overlap
    masses = zone_masses(heatmap, {"lesion": lesion, "lung": lung})
    assert list(masses) == ["lesion", "lung", "outside"]
    assert math.isclose(sum(masses.values()), 1.0)
    assert math.isclose(masses["lesion"], heatmap[2:8, 2:8].sum() / heatmap.sum())
    assert math.isclose(masses["outside"], heatmap[~lung].sum() / heatmap.sum())


def test_exclusive_masks_merges_a_given_outside_with_the_remainder():
    first, outside = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    first[0] = True
    outside[1] = True
    masks = exclusive_masks({"first": first, "outside": outside})
    assert masks["outside"].sum() == 12 and not (masks["outside"] & masks["first"]).any()


def test_image_left_is_the_patients_right():
    heatmap = np.zeros((100, 100))
    heatmap[20:70, 15:36] = 1.0  # the lung field on the image's left
    masses = zone_masses(heatmap)
    right = sum(mass for zone, mass in masses.items() if zone.startswith("right_"))
    assert math.isclose(right, 1.0)
    assert [zone for zone, _ in top_zones(masses, 3)] == [
        "right_middle",
        "right_upper",
        "right_lower",
    ]
    heatmap[:, :50] = 1.0  # the whole left half: nothing of it in the patient's left zones
    assert sum(mass for zone, mass in zone_masses(heatmap).items() if zone.startswith("left_")) == 0


def test_cardiac_silhouette_lies_low_and_to_the_patients_left():
    masks = zone_masks(100, 100)
    rows, cols = np.nonzero(masks["cardiac_silhouette"])
    assert cols.mean() > 50 and rows.mean() > 50


def test_all_zero_map_has_no_shares_and_bad_maps_are_refused():
    masses = zone_masses(np.zeros((16, 16)))
    assert all(math.isnan(mass) for mass in masses.values())
    assert top_zones(masses) == []
    with pytest.raises(ValueError, match="non-negative"):
        zone_masses(-np.ones((16, 16)))
    with pytest.raises(ValueError, match=r"zone masks are \(8, 8\), the heat map is \(16, 16\)"):
        zone_masses(np.ones((16, 16)), {"a": np.ones((8, 8), bool)})


def test_top_zones_ranks_by_mass_and_leaves_outside_out():
    masses = {"right_lower": 0.2, "outside": 0.5, "cardiac_silhouette": 0.3}
    assert top_zones(masses, k=2) == [("cardiac_silhouette", 0.3), ("right_lower", 0.2)]
    assert top_zones(masses, k=1, exclude=()) == [("outside", 0.5)]
