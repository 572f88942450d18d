"""Heat-map post-processing shared by every method."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chestclip.explain import normalise, to_heatmap


def test_normalise_stretches_to_the_unit_range():
    heatmap = normalise(np.array([[1.0, 3.0], [2.0, 5.0]]))
    np.testing.assert_allclose(heatmap, [[0.0, 0.5], [0.25, 1.0]])


def test_flat_maps_stay_flat_zero_stays_zero():
    assert not normalise(np.zeros((4, 4))).any()
    np.testing.assert_array_equal(normalise(np.full((4, 4), 0.3)), np.ones((4, 4)))


def test_non_finite_maps_are_refused():
    with pytest.raises(ValueError, match="non-finite"):
        normalise(np.array([[0.0, np.nan]]))


def test_to_heatmap_upsamples_a_grid_keeping_rows_and_columns():
    grid = torch.zeros(4, 8)
    grid[1, 6] = 2.0  # second row, seventh column
    heatmap = to_heatmap(grid, (32, 64))  # cells of 8 x 8 pixels
    assert heatmap.shape == (32, 64) and heatmap.dtype == np.float32
    row, col = np.unravel_index(heatmap.argmax(), heatmap.shape)
    assert 8 <= row < 16 and 48 <= col < 56
    assert heatmap.min() == 0.0 and heatmap.max() == 1.0
