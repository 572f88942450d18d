"""The radiographs look like chest films, not noise, at any size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from chestclip.phantom.findings import draw_frontal
from chestclip.phantom.frontal import render_frontal
from chestclip.phantom.study import plan_study, render_study


def neighbour_correlation(image: np.ndarray) -> float:
    """Correlation of horizontally adjacent pixels (about 0 for white noise)."""
    return float(np.corrcoef(image[:, :-1].ravel(), image[:, 1:].ravel())[0, 1])


@pytest.mark.parametrize("uid", range(1, 7))
def test_lungs_are_darker_than_heart_and_abdomen(uid: int) -> None:
    plan = plan_study(0, uid)
    scene = render_frontal(plan.frontal, 128)
    image = draw_frontal(plan.frontal, (), 128, 1.0, plan.frontal_noise_seed).pixels
    lungs = (scene.region("right") > 0.9) | (scene.region("left") > 0.9)
    heart = scene.region("heart") > 0.9
    u, v = scene.grid()
    abdomen = (scene.region("body") > 0.5) & (v > 0.85) & (np.abs(u) < 0.5)
    outside = scene.region("body") == 0
    assert lungs.sum() > 0.1 * image.size and heart.any() and abdomen.any() and outside.any()
    assert image[outside].mean() + 20 < image[lungs].mean()
    assert image[lungs].mean() + 30 < image[heart].mean()
    assert image[lungs].mean() + 30 < image[abdomen].mean()
    # the heart lies mostly on the image's right (the patient's left)
    columns = np.nonzero(heart)[1]
    assert np.mean(columns > 64) > 0.6


@pytest.mark.parametrize("size", [64, 100, 256])
def test_views_are_smooth_structured_images(size: int) -> None:
    plan = next(p for p in (plan_study(4, uid) for uid in range(1, 20)) if p.lateral_id)
    images = render_study(plan, size, 1.0)
    for image in (images.frontal.pixels, images.lateral):
        assert image.shape == (size, size) and image.dtype == np.uint8
        assert neighbour_correlation(image) > 0.9
        assert image.min() < 30 and image.max() > 200  # black air outside, white bone and tissue
    lateral = images.lateral.astype(float)
    # lateral: air-filled chest in the middle, darker than the abdomen below the domes
    middle = lateral[int(0.35 * size) : int(0.55 * size), int(0.4 * size) : int(0.6 * size)]
    abdomen = lateral[int(0.85 * size) :, int(0.3 * size) : int(0.6 * size)]
    assert middle.mean() + 20 < abdomen.mean()


def test_a_study_looks_the_same_at_any_size() -> None:
    plan = plan_study(9, 3)
    small = render_study(plan, 64, 1.0).frontal.pixels.astype(float)
    large = render_study(plan, 256, 1.0).frontal.pixels
    shrunk = np.asarray(Image.fromarray(large).resize((64, 64), Image.Resampling.BOX), dtype=float)
    assert np.abs(small - shrunk).mean() < 8
    assert np.corrcoef(small.ravel(), shrunk.ravel())[0, 1] > 0.97


def test_studies_differ_in_position_and_exposure() -> None:
    images = [render_study(plan_study(0, uid), 64, 1.0).frontal.pixels for uid in range(1, 7)]
    means = [image.mean() for image in images]
    assert np.std(means) > 1.0
    assert all(not np.array_equal(images[0], other) for other in images[1:])
