"""Zones that follow each frontal film's anatomy: found on phantoms of varied pose, better than
the template there, never in the black bars of ``resize: pad``, the template as the fallback."""

from __future__ import annotations

import numpy as np
import pytest

from chestclip.data.images import fit_square
from chestclip.explain.anatomy import (
    ANATOMY,
    TEMPLATE_SOURCE,
    Anatomy,
    content_box,
    image_zones,
    place_zones,
    segment_lungs,
    template_in,
)
from chestclip.explain.roi import OUTSIDE, TEMPLATE, zone_masks, zone_masses
from chestclip.phantom.study import plan_study
from chestclip.phantom.variation import VARIATIONS, varied_frontal

SIZE = 64


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def true_zones(truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return zone_masks(
        SIZE, SIZE, place_zones(Anatomy(truth["right"], truth["left"], truth["heart"]))
    )


@pytest.fixture(scope="module")
def shifted_films() -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Phantom films moved, scaled and turned well beyond the generator's own pose."""
    rng = np.random.default_rng(0)
    variation = VARIATIONS["shifted, scaled, rotated"]
    return [varied_frontal(plan_study(7, uid), variation, SIZE, rng) for uid in range(1, 17)]


def test_lungs_and_heart_are_found_on_a_phantom():
    film, truth = varied_frontal(plan_study(7, 1), None, SIZE, np.random.default_rng(0))
    found = segment_lungs(film)
    assert found is not None
    assert iou(found.right_lung, truth["right"]) > 0.6 and iou(found.left_lung, truth["left"]) > 0.6
    # the image's left half holds the patient's right lung
    assert np.nonzero(found.right_lung)[1].mean() < SIZE / 2 < np.nonzero(found.left_lung)[1].mean()
    assert found.heart is not None and iou(found.heart, truth["heart"]) > 0.4


def test_per_image_zones_beat_the_template_on_shifted_and_scaled_films(shifted_films):
    per_image, template, found = [], [], 0
    for film, truth in shifted_films:
        expected = true_zones(truth)
        zones = image_zones(film)
        found += zones.source == ANATOMY
        fitted = zone_masks(SIZE, SIZE, template_in(content_box(film), SIZE, SIZE))
        per_image += [iou(zones.masks[z], expected[z]) for z in TEMPLATE]
        template += [iou(fitted[z], expected[z]) for z in TEMPLATE]
    assert found >= 12  # of 16
    assert np.mean(per_image) > np.mean(template) + 0.1


def test_zones_stay_out_of_the_padding_bars():
    """Issue 14: the template was laid over the whole square, black bars included."""
    film, _ = varied_frontal(plan_study(7, 2), None, 96, np.random.default_rng(0))
    padded = fit_square(film[:, 16:80], SIZE, "pad")  # a portrait film: bars left and right
    bars = np.zeros((SIZE, SIZE), dtype=bool)
    bars[:, :10], bars[:, -10:] = True, True
    assert not padded[bars].any()
    for zones in (image_zones(padded), image_zones(np.where(padded > 0, 128, 0).astype(np.uint8))):
        inside = ~zones.masks[OUTSIDE]
        assert inside.any() and not (inside & bars).any(), zones.source


def test_no_plausible_lungs_fall_back_to_the_template_in_the_content():
    blank = np.zeros((SIZE, SIZE), dtype=np.uint8)
    blank[8:56, 16:48] = 128  # a uniform film padded on all sides
    zones = image_zones(blank)
    assert zones.source == TEMPLATE_SOURCE and segment_lungs(blank) is None
    box = content_box(blank)
    assert (box.y0, box.y1, box.x0, box.x1) == (8, 56, 16, 48)
    inside = ~zones.masks[OUTSIDE]
    rows, cols = np.nonzero(inside)
    assert rows.min() >= 8 and rows.max() < 56 and cols.min() >= 16 and cols.max() < 48
    assert image_zones(np.zeros((SIZE, SIZE), np.uint8)).source == TEMPLATE_SOURCE


def test_zone_masses_partition_the_map_in_per_image_zones(shifted_films):
    film, _ = shifted_films[0]
    zones = image_zones(film)
    assert list(zones.masks) == [*TEMPLATE, OUTSIDE] and list(zones.polygons) == list(TEMPLATE)
    coverage = np.sum([mask.astype(int) for mask in zones.masks.values()], axis=0)
    np.testing.assert_array_equal(coverage, 1)
    masses = zone_masses(np.random.default_rng(0).random((SIZE, SIZE)), zones.masks)
    assert sum(masses.values()) == pytest.approx(1.0)
