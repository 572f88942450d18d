"""The viewer's images: PNG round trip, colour map and blend."""

import base64
import io

import matplotlib
import numpy as np
from PIL import Image

from chestclip.serve.images import blended_overlay, coloured_heatmap, png_base64


def test_png_base64_round_trips_grey_and_colour():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    colour = np.stack([grey, 255 - grey, grey // 2], axis=-1)
    for pixels in (grey, colour):
        image = Image.open(io.BytesIO(base64.b64decode(png_base64(pixels))))
        assert image.format == "PNG"
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_colour_map_and_blend():
    heatmap = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    image = np.full((4, 4), 200, np.uint8)
    colours = coloured_heatmap(heatmap)
    assert colours.shape == (4, 4, 3) and colours.dtype == np.uint8
    hottest = np.round(np.array(matplotlib.colormaps["inferno"](1.0)[:3]) * 255)
    np.testing.assert_array_equal(colours[-1, -1], hottest)
    np.testing.assert_array_equal(blended_overlay(image, heatmap, alpha=0.0)[..., 0], image)
    np.testing.assert_array_equal(blended_overlay(image, heatmap, alpha=1.0), colours)
    half = blended_overlay(image, heatmap, alpha=0.5).astype(float)
    assert np.abs(half - (200 + colours.astype(float)) / 2).max() <= 0.5
