"""Images the viewer shows, as base64 PNGs: the grey model input, its heat map coloured with the
overlay figures' colour map (opaque: the page lays it over the X-ray at the opacity its slider
sets), and the two blended at the figures' default opacity, as ``save_overlay`` draws them."""

from __future__ import annotations

import base64
import io

import matplotlib
import numpy as np
from PIL import Image

from chestclip.explain.overlay import DEFAULT_ALPHA, DEFAULT_CMAP


def png_base64(pixels: np.ndarray) -> str:
    """uint8 [H, W] (grey) or [H, W, 3] (RGB) → base64 of its PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def coloured_heatmap(heatmap: np.ndarray, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """Heat map float [H, W] in [0, 1] → uint8 RGB [H, W, 3]."""
    rgb = matplotlib.colormaps[cmap](np.clip(heatmap, 0.0, 1.0))[..., :3]
    return np.round(rgb * 255).astype(np.uint8)


def blended_overlay(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = DEFAULT_ALPHA, cmap: str = DEFAULT_CMAP
) -> np.ndarray:
    """uint8 grey [H, W] with its coloured heat map [H, W] laid over it at ``alpha`` → uint8 RGB
    [H, W, 3]."""
    colour = coloured_heatmap(heatmap, cmap).astype(np.float64)
    grey = np.repeat(image[..., None].astype(np.float64), 3, axis=-1)
    return np.round((1 - alpha) * grey + alpha * colour).astype(np.uint8)
