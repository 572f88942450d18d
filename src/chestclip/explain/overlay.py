"""Heat-map overlays: one explained image beside its original, and galleries of several; and
the randomisation cascade's rank correlations, step by step.

A perceptually uniform colour map (``inferno``) over the grey X-ray, so heat reads the same in
print, in grey scale and for colour-blind readers. When the zones the ROI shares were measured in
are given (``chestclip.explain.anatomy.Zones``), their outlines are drawn over the heat map and the
title says whether they follow the image's anatomy or the template. Figures are written
atomically (``chestclip.evaluation.plots.save_figure``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.image import AxesImage

from chestclip.evaluation.plots import save_figure
from chestclip.explain.anatomy import Zones
from chestclip.explain.roi import OUTSIDE

DEFAULT_CMAP = "inferno"
DEFAULT_ALPHA = 0.5
ZONE_COLOUR = "#7fdbff"


def overlay_caption(
    probability: float, target: str, method: str, positive: str = "diseased"
) -> str:
    """E.g. ``P(diseased) = 0.83 · target: diseased · method: attention-gradcam``."""
    return f"P({positive}) = {probability:.2f} · target: {target} · method: {method}"


def _grey(image: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """A uint8 or float image [H, W] as float in [0, 1], checked against its heat map's size."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be grey [H, W], got shape {image.shape}")
    if np.shape(heatmap) != image.shape:
        raise ValueError(f"heat map {np.shape(heatmap)} and image {image.shape} differ in size")
    return image / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)


def _draw(
    ax: Axes, grey: np.ndarray, heatmap: np.ndarray | None, alpha: float, cmap: str
) -> AxesImage | None:
    ax.imshow(grey, cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_axis_off()
    if heatmap is None:
        return None
    return ax.imshow(heatmap, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0)


def draw_zones(ax: Axes, zones: Zones) -> None:
    """Outline each zone (the disjoint masks the shares are measured in) on ``ax``."""
    for name, mask in zones.masks.items():
        if name != OUTSIDE and mask.any():
            ax.contour(mask, levels=[0.5], colors=ZONE_COLOUR, linewidths=0.7)


def zones_label(zones: Zones | None) -> str:
    return "" if zones is None else f" · zones: {zones.source}"


def overlay_figure(
    image: np.ndarray,
    heatmap: np.ndarray,
    caption: str,
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
    zones: Zones | None = None,
) -> plt.Figure:
    """The original ``image`` [H, W] beside it with ``heatmap`` [H, W] in [0, 1] overlaid, and
    the outlines of ``zones`` when given."""
    grey = _grey(image, heatmap)  # checked before a figure exists, so none leaks on error
    figure, (original, overlaid) = plt.subplots(1, 2, figsize=(8, 4.4))
    _draw(original, grey, None, alpha, cmap)
    original.set_title("original")
    colours = _draw(overlaid, grey, heatmap, alpha, cmap)
    if zones is not None:
        draw_zones(overlaid, zones)
    overlaid.set_title("saliency" + zones_label(zones))
    figure.colorbar(colours, ax=overlaid, fraction=0.046, pad=0.04, label="relative saliency")
    figure.suptitle(caption)
    return figure


def save_overlay(
    path: str | Path,
    image: np.ndarray,
    heatmap: np.ndarray,
    caption: str,
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
    zones: Zones | None = None,
) -> None:
    """Write :func:`overlay_figure` atomically to ``path`` (format from its suffix, e.g. PNG)."""
    save_figure(overlay_figure(image, heatmap, caption, alpha, cmap, zones), path)


@dataclass(frozen=True)
class OverlayPanel:
    """One gallery cell: an image [H, W], its heat map [H, W] in [0, 1], a title and the zones
    its shares were measured in (outlined when given)."""

    image: np.ndarray
    heatmap: np.ndarray
    title: str
    zones: Zones | None = None


def gallery_figure(
    panels: Sequence[OverlayPanel],
    columns: int = 4,
    title: str = "",
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
) -> plt.Figure:
    """A grid of overlays with their titles (e.g. the most confident TP/FP/TN/FN)."""
    if not panels:
        raise ValueError("a gallery needs at least one panel")
    greys = [_grey(panel.image, panel.heatmap) for panel in panels]
    columns = min(columns, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    for ax, panel, grey in zip(axes.flat, panels, greys, strict=False):
        _draw(ax, grey, panel.heatmap, alpha, cmap)
        if panel.zones is not None:
            draw_zones(ax, panel.zones)
        ax.set_title(panel.title + zones_label(panel.zones), fontsize=9)
    if title:
        figure.suptitle(title)
    return figure


def save_gallery(
    path: str | Path,
    panels: Sequence[OverlayPanel],
    columns: int = 4,
    title: str = "",
    alpha: float = DEFAULT_ALPHA,
    cmap: str = DEFAULT_CMAP,
) -> None:
    """Write :func:`gallery_figure` atomically to ``path``."""
    save_figure(gallery_figure(panels, columns, title, alpha, cmap), path)


def plot_randomisation_cascade(cascade: dict[str, list[dict]], path: str | Path) -> None:
    """Mean rank correlation between the trained and the randomised model's maps at each step
    of the cascade (``summary.summarise_cascade``), 95 % intervals as error bars, per method."""
    figure, ax = plt.subplots(figsize=(7.5, 4.2))
    steps: list[str] = []
    for method, entries in cascade.items():
        steps = [entry["step"] for entry in entries]
        shown = [(x, e["rank_correlation"]) for x, e in enumerate(entries) if e["rank_correlation"]]
        x = [position for position, _ in shown]
        value = np.array([ci["value"] for _, ci in shown])
        low, high = (np.array([ci[key] for _, ci in shown]) for key in ("ci_low", "ci_high"))
        ax.errorbar(x, value, yerr=[value - low, high - value], marker="o", capsize=3, label=method)
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(steps)), steps, rotation=30, ha="right")
    ax.set(
        ylim=(-1.05, 1.05),
        xlabel="re-initialised so far, from the top down (cascading randomisation)",
        ylabel="rank correlation with the trained model's maps",
        title="Randomisation sanity check: maps must change (↓)",
    )
    ax.legend(fontsize="small")
    figure.tight_layout()
    save_figure(figure, path)
