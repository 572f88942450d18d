"""The out-of-distribution kinds: every one makes an image a reader could hand to predict, the
same for the same seed, and the damaged kinds really change the film."""

from __future__ import annotations

import numpy as np
import pytest

from chestclip.phantom.outliers import DAMAGED, MADE


@pytest.mark.parametrize("kind", sorted(MADE))
def test_made_kinds_are_images_of_the_asked_size(kind):
    first = MADE[kind](np.random.default_rng(5), 96)
    again = MADE[kind](np.random.default_rng(5), 96)
    assert first.dtype == np.uint8 and first.ndim in (2, 3) and max(first.shape[:2]) == 96
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("kind", sorted(DAMAGED))
def test_damaged_kinds_change_the_film(kind):
    film = np.random.default_rng(0).integers(0, 256, (80, 60), dtype=np.uint8)
    damaged = DAMAGED[kind](film, np.random.default_rng(1))
    assert damaged.dtype == np.uint8 and damaged.ndim == 2
    assert damaged.shape != film.shape or not np.array_equal(damaged, film)
