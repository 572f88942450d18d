"""Zones that follow each frontal image's anatomy.

The lung fields are found in the pixels (classical segmentation: the large dark regions enclosed
by the body), the heart from them (below where the left lung's medial border turns outwards), and
every zone of :data:`chestclip.explain.roi.TEMPLATE` is placed relative to them by
:func:`place_zones`: each lung's height split in three (upper, middle, lower), its
lateral-inferior corner (costophrenic angle), an ellipse fitted to the heart (cardiac silhouette)
and the gap between the lungs above it (mediastinum). Everything is measured inside the image's
content: the black bars ``resize: pad`` adds and flat collimated margins are excluded, and when no
plausible pair of lungs is found the template is fitted into that content instead
(``source == "template"``).

Hand-written with scipy.ndimage (smoothing, labelling, morphology): no library we may depend on
segments chest films without torchvision, and a model trained on the phantoms' masks would learn
the phantoms, which real films are not. On phantoms of varied pose, collimation and exposure
these zones beat the template in every zone (``benchmarks/bench_zones.py``, README). Frontal films
only: a lateral has no left and right lung field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from chestclip.explain.roi import TEMPLATE, Vertices, box, zone_masks

ANATOMY, TEMPLATE_SOURCE = "anatomy", "template"
MIN_LUNG_AREA, MAX_LUNG_AREA = 0.03, 0.3  # share of the content a plausible lung covers
# where the zones sit within a lung's bounding box (fractions of its width w and height h),
# matching the template's proportions on the average phantom
COSTOPHRENIC_WIDTH, COSTOPHRENIC_ABOVE, COSTOPHRENIC_BELOW = 0.5, 0.2, 0.09
# how far the left lung's medial border moves out where the heart begins (of the lung's width)
HEART_TURN = 0.06
# the band inside the body's outline never taken for lung (of the content's side): there the thin
# chest wall can be as dark as a lung and join it to the air around the body
BODY_MARGIN = 0.08
FLAT = 6.0  # grey levels (of 255): an edge line this uniform holds no anatomy


@dataclass(frozen=True)
class Box:
    """A half-open pixel box ``[y0, y1) x [x0, x1)``."""

    y0: int
    y1: int
    x0: int
    x1: int


@dataclass(frozen=True)
class Anatomy:
    """Boolean masks [H, W]: the lung fields (image left = the patient's right) and the heart."""

    right_lung: np.ndarray
    left_lung: np.ndarray
    heart: np.ndarray | None


@dataclass(frozen=True)
class Zones:
    """An image's zones: disjoint masks [H, W] (``outside`` included) and where they came from."""

    source: str  # ANATOMY or TEMPLATE_SOURCE
    masks: dict[str, np.ndarray]
    polygons: dict[str, Vertices]  # normalised (x, y) outlines, for drawing


def content_box(image: np.ndarray) -> Box:
    """The image without the flat rows and columns at its edges: the black bars ``resize: pad``
    adds, unexposed (collimated) margins, empty background (grey-level spread <= FLAT)."""
    pixels = image.astype(np.float32)
    rows = np.flatnonzero(pixels.std(axis=1) > FLAT)
    cols = np.flatnonzero(pixels.std(axis=0) > FLAT)
    if rows.size < 2 or cols.size < 2:
        return Box(0, image.shape[0], 0, image.shape[1])
    return Box(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in [0, 1] (256 bins)."""
    counts, edges = np.histogram(values, bins=256, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mean = np.cumsum(counts * centres)
    total, grand = weight[-1], mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (grand * weight - total * mean) ** 2 / (weight * (total - weight))
    if np.isnan(between[:-1]).all():  # one grey level: nothing to separate
        return float(values.mean())
    return float(centres[np.nanargmax(between[:-1])])


def segment_lungs(image: np.ndarray) -> Anatomy | None:
    """The two lung fields (and the heart, :func:`heart_between`) of a frontal film uint8 [H, W],
    or None when no plausible pair is found.

    Inside the content, smoothed so that ribs blur into the lung fields: the background is what
    is darker than half of Otsu's threshold; lungs are below Otsu's threshold of the body. Each
    lung is the largest dark region on its side of the body's midline that keeps off the body's
    outline (BODY_MARGIN); the threshold is lowered step by step until such a region appears on
    each side, then each region is grown back to Otsu's outline by the opening's two pixels.
    """
    found = content_box(image)
    crop = image[found.y0 : found.y1, found.x0 : found.x1].astype(np.float32) / 255.0
    side = min(crop.shape)
    if side < 16:
        return None
    smooth = ndimage.gaussian_filter(crop, sigma=side / 50)
    background = smooth < 0.5 * _otsu(smooth)
    if background.mean() > 0.8:
        return None
    labels, _ = ndimage.label(background)
    edge = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    outside = ndimage.binary_dilation(
        np.isin(labels, edge[edge > 0]), iterations=max(1, int(side * BODY_MARGIN))
    )
    threshold = _otsu(smooth[~background])
    midline = float(np.mean(np.nonzero(~background)[1]))
    lungs: dict[str, np.ndarray] = {}
    for level in np.linspace(1.0, 0.6, 9) * threshold:
        opened = ndimage.binary_opening((smooth < level) & ~outside, iterations=1)
        for name, core in _lung_components(opened, midline).items():
            if name not in lungs:
                grown = ndimage.binary_dilation(core, iterations=2, mask=smooth < threshold)
                lungs[name] = np.zeros(image.shape, dtype=bool)
                lungs[name][found.y0 : found.y1, found.x0 : found.x1] = ndimage.binary_fill_holes(
                    grown
                )
        if len(lungs) == 2:
            break
    if len(lungs) < 2 or not _plausible(lungs["right"], lungs["left"]):
        return None
    return Anatomy(lungs["right"], lungs["left"], heart_between(lungs["right"], lungs["left"]))


def _lung_components(dark: np.ndarray, midline: float) -> dict[str, np.ndarray]:
    """The largest dark region of plausible size not touching the border, per side."""
    labels, count = ndimage.label(dark)
    index = np.arange(1, count + 1)
    border = set(np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    areas = ndimage.sum_labels(dark, labels, index=index) / dark.size
    centres = ndimage.center_of_mass(dark, labels, index=index)
    found = {}
    for label, area, (_, column) in zip(index, areas, centres, strict=True):
        name = "right" if column < midline else "left"
        plausible = MIN_LUNG_AREA <= area <= MAX_LUNG_AREA and label not in border
        if plausible and area > found.get(name, (0.0, 0))[0]:
            found[name] = (area, label)
    return {name: labels == label for name, (_, label) in found.items()}


def _rows(mask: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    return int(rows[0]), int(rows[-1]) + 1


def _plausible(right: np.ndarray, left: np.ndarray) -> bool:
    """Two lungs side by side of similar height, mostly at the same level."""
    (r0, r1), (l0, l1) = _rows(right), _rows(left)
    overlap = min(r1, l1) - max(r0, l0)
    return 0.6 <= (r1 - r0) / (l1 - l0) <= 1.6 and overlap > 0.5 * max(r1 - r0, l1 - l0)


def heart_between(right: np.ndarray, left: np.ndarray) -> np.ndarray | None:
    """The heart [H, W], an ellipse in the box its borders on the lungs outline: from where the
    left lung's medial border turns outwards (HEART_TURN of the lung's width beyond its level
    higher up) down to the lung bases, between the lungs' medial borders there (medians over
    those rows). None when the left border never turns."""
    columns = np.arange(left.shape[1])
    top, bottom = _rows(left)
    rows = np.arange(top, bottom)
    medial = np.array([columns[left[r]].min() if left[r].any() else -1 for r in rows])
    height, width = bottom - top, float(np.ptp(np.flatnonzero(left.any(axis=0)))) + 1
    level = np.median(medial[int(0.3 * height) : int(0.55 * height)])
    turned = np.flatnonzero((medial > level + HEART_TURN * width) & (rows >= top + 0.4 * height))
    if turned.size < 2:
        return None
    heart_top = int(rows[turned[0]])
    heart_bottom = (bottom + _rows(right)[1]) / 2
    right_medial = [columns[r].max() for r in right[heart_top : int(heart_bottom)] if r.any()]
    if not right_medial:
        return None
    right_border, left_border = float(np.median(right_medial)), float(np.median(medial[turned]))
    ys, xs = np.mgrid[0 : left.shape[0], 0 : left.shape[1]]
    cx, cy = (right_border + left_border) / 2, (heart_top + heart_bottom) / 2
    rx, ry = max((left_border - right_border) / 2, 1.0), max((heart_bottom - heart_top) / 2, 1.0)
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0


def _bounds(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a mask's bounding box, normalised to [0, 1]."""
    height, width = mask.shape
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return cols[0] / width, rows[0] / height, (cols[-1] + 1) / width, (rows[-1] + 1) / height


def _fitted_ellipse(mask: np.ndarray) -> Vertices:
    """The ellipse with the mask's centroid and second moments (a filled ellipse's own)."""
    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    points = np.column_stack([(xs + 0.5) / width, (ys + 0.5) / height])
    centre = points.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(points.T) + 1e-9 * np.eye(2))
    angles = np.linspace(0.0, 2.0 * np.pi, 32, endpoint=False)
    unit = np.column_stack([np.cos(angles), np.sin(angles)]) * 2.0 * np.sqrt(values)
    return [tuple(centre + vectors @ point) for point in unit]


def place_zones(anatomy: Anatomy) -> dict[str, Vertices]:
    """The template's zones placed on ``anatomy``, in the template's priority order."""
    lungs = {"right": _bounds(anatomy.right_lung), "left": _bounds(anatomy.left_lung)}
    zones: dict[str, Vertices] = {}
    for side, (x0, y0, x1, y1) in lungs.items():
        w, h = x1 - x0, y1 - y0
        lateral, inward = (x0, 1.0) if side == "right" else (x1, -1.0)
        corner_x = (lateral - inward * 0.03 * w, lateral + inward * COSTOPHRENIC_WIDTH * w)
        zones[f"{side}_costophrenic"] = box(
            min(corner_x), y1 - COSTOPHRENIC_ABOVE * h, max(corner_x), y1 + COSTOPHRENIC_BELOW * h
        )
    right, left = lungs["right"], lungs["left"]
    heart_top = min(right[3], left[3])
    if anatomy.heart is not None and anatomy.heart.any():
        zones["cardiac_silhouette"] = _fitted_ellipse(anatomy.heart)
        heart_top = _bounds(anatomy.heart)[1]
    else:  # the template's heart, moved from the template's lung fields to these
        lung_box = (right[0], min(right[1], left[1]), left[2], max(right[3], left[3]))
        zones["cardiac_silhouette"] = _moved(TEMPLATE["cardiac_silhouette"], lung_box)
    apex = min(right[1], left[1])
    zones["mediastinum"] = box(
        min(right[2], left[0]), apex - 0.07 * (heart_top - apex), max(right[2], left[0]), heart_top
    )
    for side, (x0, y0, x1, y1) in lungs.items():
        third = (y1 - y0) / 3
        for index, zone in enumerate(("upper", "middle", "lower")):
            zones[f"{side}_{zone}"] = box(x0, y0 + index * third, x1, y0 + (index + 1) * third)
    return {name: zones[name] for name in TEMPLATE}


# where the template's lung fields lie, (x0, y0, x1, y1) normalised: its lung zones' extent
TEMPLATE_LUNGS = (0.08, 0.10, 0.92, 0.80)


def _moved(vertices: Vertices, lungs: tuple[float, float, float, float]) -> Vertices:
    """A template polygon mapped from the template's lung fields' box to ``lungs``'."""
    (tx0, ty0, tx1, ty1), (x0, y0, x1, y1) = TEMPLATE_LUNGS, lungs
    sx, sy = (x1 - x0) / (tx1 - tx0), (y1 - y0) / (ty1 - ty0)
    return [(x0 + (x - tx0) * sx, y0 + (y - ty0) * sy) for x, y in vertices]


def template_in(box_: Box, height: int, width: int) -> dict[str, Vertices]:
    """The template's zones fitted into the content box of a ``height`` x ``width`` image."""
    x0, y0 = box_.x0 / width, box_.y0 / height
    sx, sy = (box_.x1 - box_.x0) / width, (box_.y1 - box_.y0) / height
    return {
        name: [(x0 + x * sx, y0 + y * sy) for x, y in vertices]
        for name, vertices in TEMPLATE.items()
    }


def image_zones(image: np.ndarray) -> Zones:
    """The zones of a frontal film uint8 [H, W]: on its segmented anatomy, else the template
    fitted into its content."""
    height, width = image.shape
    anatomy = segment_lungs(image)
    if anatomy is not None:
        polygons, source = place_zones(anatomy), ANATOMY
    else:
        polygons, source = template_in(content_box(image), height, width), TEMPLATE_SOURCE
    return Zones(source, zone_masks(height, width, polygons), polygons)
