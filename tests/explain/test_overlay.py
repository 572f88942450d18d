"""Overlay and gallery figures: written atomically as readable PNGs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from chestclip.explain import (
    OverlayPanel,
    gallery_figure,
    overlay_caption,
    save_gallery,
    save_overlay,
)


def _image_and_map(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = (rng.random((64, 64)) * 255).astype(np.uint8)
    heatmap = np.zeros((64, 64), dtype=np.float32)
    heatmap[10:30, 35:55] = 1.0
    return image, heatmap


def test_caption_format():
    caption = overlay_caption(0.8312, "diseased", "attention-gradcam")
    assert caption == "P(diseased) = 0.83 · target: diseased · method: attention-gradcam"


def test_overlay_png_is_written_atomically(tmp_path):
    image, heatmap = _image_and_map()
    path = tmp_path / "overlays" / "study_1.png"
    save_overlay(path, image, heatmap, overlay_caption(0.83, "diseased", "rollout"))
    with Image.open(path) as png:
        assert png.format == "PNG" and png.width > png.height  # side by side
    assert [p.name for p in path.parent.iterdir()] == ["study_1.png"]  # no temporary left


def test_overlay_refuses_a_map_of_another_size(tmp_path):
    image, _ = _image_and_map()
    figures = plt.get_fignums()
    with pytest.raises(ValueError, match="differ in size"):
        save_overlay(tmp_path / "bad.png", image, np.zeros((8, 8)), "caption")
    assert not (tmp_path / "bad.png").exists() and plt.get_fignums() == figures


def test_gallery_grid_has_a_titled_cell_per_panel(tmp_path):
    titles = ["TP 0.97", "FP 0.91", "TN 0.04", "FN 0.12", "TP 0.95"]
    panels = [OverlayPanel(*_image_and_map(seed), title) for seed, title in enumerate(titles)]
    figure = gallery_figure(panels, columns=4, title="most confident")
    shown = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert shown == titles and len(figure.axes) == 8  # 2 rows x 4 columns, 3 left empty
    plt.close(figure)
    save_gallery(tmp_path / "gallery.png", panels, columns=4)
    with Image.open(tmp_path / "gallery.png") as png:
        assert png.width > png.height
    with pytest.raises(ValueError, match="at least one panel"):
        gallery_figure([])
