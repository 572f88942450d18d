"""Images the viewer shows, as base64 PNGs: the grey model input, its heat map coloured with the
overlay figures' colour map (opaque: the page lays it over the X-ray at the opacity its slider
sets), the outlines of the zones the shares were measured in (transparent elsewhere), and the
heat map blended at the figures' default opacity with those outlines, as ``save_overlay`` draws
them."""

from __future__ import annotations

import base64
import io

import matplotlib
import numpy as np
from matplotlib.colors import to_rgb
from PIL import Image
from scipy import ndimage

from chestclip.explain.anatomy import Zones
from chestclip.explain.overlay import DEFAULT_ALPHA, DEFAULT_CMAP, ZONE_COLOUR
from chestclip.explain.roi import OUTSIDE


def png_base64(pixels: np.ndarray) -> str:
    """uint8 [H, W] (grey) or [H, W, 3] (RGB) → base64 of its PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def coloured_heatmap(heatmap: np.ndarray, cmap: str = DEFAULT_CMAP) -> np.ndarray:
    """Heat map float [H, W] in [0, 1] → uint8 RGB [H, W, 3]."""
    rgb = matplotlib.colormaps[cmap](np.clip(heatmap, 0.0, 1.0))[..., :3]
    return np.round(rgb * 255).astype(np.uint8)


def zone_borders(zones: Zones) -> np.ndarray:
    """bool [H, W]: the pixels of each zone (``outside`` aside) that touch another zone."""
    borders = np.zeros(next(iter(zones.masks.values())).shape, dtype=bool)
    for name, mask in zones.masks.items():
        if name != OUTSIDE:
            borders |= mask & ~ndimage.binary_erosion(mask, border_value=1)
    return borders


def zone_outlines(zones: Zones) -> np.ndarray:
    """uint8 RGBA [H, W, 4]: the zones' borders in the figures' zone colour, transparent
    elsewhere (the page lays it over the X-ray)."""
    borders = zone_borders(zones)
    layer = np.zeros((*borders.shape, 4), dtype=np.uint8)
    layer[borders, :3] = np.round(np.array(to_rgb(ZONE_COLOUR)) * 255)
    layer[borders, 3] = 255
    return layer


def blended_overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
    zones: Zones | None = None,
) -> np.ndarray:
    """uint8 grey [H, W] with its coloured heat map [H, W] laid over it at ``alpha`` (and the
    outlines of ``zones`` when given) → uint8 RGB [H, W, 3]."""
    colour = coloured_heatmap(heatmap, cmap).astype(np.float64)
    grey = np.repeat(image[..., None].astype(np.float64), 3, axis=-1)
    blended = np.round((1 - alpha) * grey + alpha * colour).astype(np.uint8)
    if zones is not None:
        outlines = zone_outlines(zones)
        blended[outlines[..., 3] > 0] = outlines[outlines[..., 3] > 0, :3]
    return blended
