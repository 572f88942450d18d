"""Anatomical zones of a frontal chest X-ray, and how a heat map's mass falls into them.

Coordinates are normalised: ``x`` from the image's left (0) to right (1), ``y`` from top (0) to
bottom (1). Films are read as a PA view facing the patient, so the image's LEFT half shows the
patient's RIGHT lung: ``right_*`` zones lie at small ``x``. The template is an average adult PA
film (placed on the phantoms' anatomy); zones are boxes or polygons that may overlap, and
:func:`exclusive_masks` makes them a partition: each pixel belongs to the FIRST zone in priority
order that contains its centre, and pixels in no zone form ``outside``. Zone masses therefore sum
to 1 exactly. ``chestclip.explain.anatomy`` places the same zones on each frontal film's own lungs
and heart, or fits this template into the film's content (``zone_masses(heat, masks)``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

import numpy as np
from matplotlib.path import Path as Polygon

OUTSIDE = "outside"
Vertices = list[tuple[float, float]]  # a polygon in normalised (x, y)


def box(x0: float, y0: float, x1: float, y1: float) -> Vertices:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 32) -> Vertices:
    angles = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]


# In priority order: small, specific zones first, so they win where they overlap larger ones.
# Lung zones split the lung fields' height (apex 0.10 to the lateral diaphragm 0.80) in three,
# mirrored about x = 0.5; placed by eye on the phantoms' PA anatomy (chestclip.phantom).
TEMPLATE: dict[str, Vertices] = {
    "right_costophrenic": box(0.07, 0.66, 0.27, 0.86),
    "left_costophrenic": box(0.73, 0.66, 0.93, 0.86),
    "cardiac_silhouette": _ellipse(0.56, 0.64, 0.17, 0.13),
    "mediastinum": box(0.41, 0.05, 0.59, 0.55),
    "right_upper": box(0.12, 0.10, 0.47, 0.33),
    "right_middle": box(0.10, 0.33, 0.47, 0.57),
    "right_lower": box(0.08, 0.57, 0.47, 0.80),
    "left_upper": box(0.53, 0.10, 0.88, 0.33),
    "left_middle": box(0.53, 0.33, 0.90, 0.57),
    "left_lower": box(0.53, 0.57, 0.92, 0.80),
}
ZONES: tuple[str, ...] = (*TEMPLATE, OUTSIDE)


def exclusive_masks(masks: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Possibly overlapping boolean masks ``{name: [H, W]}`` → a partition of the image: a pixel
    goes to the first mask (in the mapping's order) that holds it, the rest to ``outside``
    (merged with a given ``outside`` mask, if any)."""
    masks = {name: np.asarray(mask, dtype=bool) for name, mask in masks.items()}
    shapes = {mask.shape for mask in masks.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"zone masks must share one [H, W] shape, got {sorted(shapes)}")
    claimed = np.zeros(next(iter(shapes)), dtype=bool)
    exclusive = {}
    for name, mask in masks.items():
        if name == OUTSIDE:
            continue
        exclusive[name] = mask & ~claimed
        claimed |= mask
    exclusive[OUTSIDE] = ~claimed | masks.get(OUTSIDE, False)
    return exclusive


def zone_masks(
    height: int, width: int, polygons: Mapping[str, Vertices] = TEMPLATE
) -> dict[str, np.ndarray]:
    """Zones (the template's, or ``polygons`` in its priority order) rasterised at ``height`` x
    ``width`` (pixel centres): disjoint boolean masks ``[H, W]`` covering the image, ``outside``
    included."""
    ys, xs = np.mgrid[0:height, 0:width]
    centres = np.column_stack([(xs.ravel() + 0.5) / width, (ys.ravel() + 0.5) / height])
    masks = {
        name: Polygon(vertices).contains_points(centres).reshape(height, width)
        for name, vertices in polygons.items()
    }
    return exclusive_masks(masks)


def zone_masses(
    heatmap: np.ndarray, masks: Mapping[str, np.ndarray] | None = None
) -> dict[str, float]:
    """Share of the heat map's total mass in each zone (``outside`` included; the shares sum to
    1). ``masks`` (``{name: bool [H, W]}``, e.g. a segmentation of this image) replace the
    template; overlaps go to the first mask. An all-zero heat map has no mass to share: every
    zone gets NaN."""
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if heatmap.ndim != 2:
        raise ValueError(f"heat map must be [H, W], got shape {heatmap.shape}")
    if not np.isfinite(heatmap).all() or (heatmap < 0).any():
        raise ValueError("heat map must be finite and non-negative")
    zones = zone_masks(*heatmap.shape) if masks is None else exclusive_masks(masks)
    if next(iter(zones.values())).shape != heatmap.shape:
        raise ValueError(
            f"zone masks are {next(iter(zones.values())).shape}, the heat map is {heatmap.shape}"
        )
    total = heatmap.sum()
    if total == 0:
        return {name: float("nan") for name in zones}
    return {name: float(heatmap[mask].sum() / total) for name, mask in zones.items()}


def top_zones(
    masses: Mapping[str, float], k: int = 3, exclude: Collection[str] = (OUTSIDE,)
) -> list[tuple[str, float]]:
    """The ``k`` zones with the largest mass, largest first (NaN and ``exclude`` left out)."""
    ranked = [(name, mass) for name, mass in masses.items() if name not in exclude]
    ranked = [(name, mass) for name, mass in ranked if not math.isnan(mass)]
    return sorted(ranked, key=lambda item: -item[1])[:k]
