"""Frontal or lateral, from the pixels of a chest radiograph and the other views of its study.

The signal is the *mediastinal ridge*: a frontal (PA/AP) film shows a bright vertical band (the
mediastinum and spine) with a dark lung field at the same distance on either side of it; a
lateral film shows a single lung field between the sternum and the spine, and no band with dark
lungs on both sides. Real frontal films have this anatomy whatever the patient's build, the
exposure, the collimation or a mirrored display, which is why it was chosen over learned models
that fit phantoms as well but may learn cues only phantoms have, and degrade faster when the
acquisition varies more (mirror symmetry, the other candidate built on anatomy, fails because a
lateral chest is a symmetric oval too; ``benchmarks/bench_views.py`` has the measurements, on
phantoms only: no real films are on the development machines). Hand-written: no library we may
depend on classifies radiograph views (torchxrayvision needs torchvision).

``infer_projection`` guesses one image; ``frontal_probability`` scores many; ``complete_views``
adds what a study tells: the real collection's two-image studies hold one frontal and one lateral
film in 3,194 of 3,210 cases (measured on the Kaggle layout's projection labels), so within such
a study the more frontal-looking image is frontal and the other lateral, and a study whose other
view is known needs no pixels at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from chestclip.data.records import FRONTAL, LATERAL, UNKNOWN

WORK_SIZE = 48  # images are compared at this size: the ridge is a coarse structure
# p(frontal) = sigmoid(RIDGE_SLOPE * (ridge - RIDGE_THRESHOLD)): a one-feature logistic regression
# fitted on 757 views of 400 phantom studies with varied anatomy, exposure, position and
# collimation (`python benchmarks/bench_views.py --fit`: threshold 0.210, slope 39.3).
RIDGE_THRESHOLD, RIDGE_SLOPE = 0.21, 40.0
# Where the ridge is looked for, as fractions of the image: the rows of the lungs, the central
# columns, and the distances from the ridge at which the lung fields are compared with it.
_ROWS = (0.25, 0.7)
_CENTRE = (0.3, 0.7)
_LUNG_DISTANCES = (0.15, 0.2, 0.25)


@dataclass(frozen=True)
class ViewGuess:
    """A projection guessed from the pixels: ``projection`` is FRONTAL when ``p_frontal`` ≥ 0.5,
    else LATERAL; ``p_frontal`` in [0, 1] says how sure."""

    projection: str
    p_frontal: float


def mediastinal_ridge(image: np.ndarray) -> float:
    """How much brighter the best central column is than the lung fields on both sides of it,
    in units of the image's grey range (2nd to 98th percentile). ``image``: uint8 [H, W],
    bone bright. About 0.4-0.6 on frontal films, below 0.15 on lateral ones."""
    x = working_image(image)
    size = x.shape[1]
    rows = x[int(size * _ROWS[0]) : int(size * _ROWS[1])]
    profile = ndimage.gaussian_filter1d(rows.mean(axis=0), sigma=1.0)  # [W]
    centres = np.arange(int(size * _CENTRE[0]), int(size * _CENTRE[1]))
    best = -1.0
    for fraction in _LUNG_DISTANCES:
        distance = int(size * fraction)
        left, right = profile[centres - distance], profile[centres + distance]
        best = max(best, float((profile[centres] - np.maximum(left, right)).max()))
    return best


def working_image(image: np.ndarray) -> np.ndarray:
    """``image`` [H, W] → float32 [WORK_SIZE, WORK_SIZE] in [0, 1], its 2nd-98th percentile
    stretched to the full range (exposure and window do not matter)."""
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(f"expected a grey image [H, W], got shape {image.shape}")
    resized = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).resize(
        (WORK_SIZE, WORK_SIZE), Image.Resampling.BILINEAR
    )
    x = np.asarray(resized, dtype=np.float32)
    low, high = np.percentile(x, [2, 98])
    return np.clip((x - low) / max(float(high - low), 1.0), 0.0, 1.0)


def infer_projection(image: np.ndarray) -> ViewGuess:
    """Frontal or lateral, from one uint8 [H, W] radiograph (bone bright, any size or aspect)."""
    p = float(frontal_probability([image])[0])
    return ViewGuess(FRONTAL if p >= 0.5 else LATERAL, p)


def frontal_probability(images: Iterable[np.ndarray]) -> np.ndarray:
    """P(frontal) of each uint8 [H, W] image (or each row of a uint8 [N, S, S] array) → [N]."""
    ridges = np.array([mediastinal_ridge(np.asarray(image)) for image in images], np.float64)
    return 1.0 / (1.0 + np.exp(-RIDGE_SLOPE * (ridges - RIDGE_THRESHOLD)))


def complete_views(table: pd.DataFrame, p_frontal: np.ndarray) -> np.ndarray:
    """The projection of every image of ``table`` (columns ``uid``, ``projection``), its unknown
    ones filled in: in a study of two images whose other view is known, the opposite view; in a
    study of two unknown images with pixels, the one with the higher ``p_frontal`` is frontal and
    the other lateral; otherwise frontal when ``p_frontal`` ≥ 0.5. ``p_frontal`` [N] is NaN where
    an image has no pixels; such an image stays unknown unless its study decides. Known
    projections are never changed."""
    projection = table["projection"].to_numpy(dtype=object).copy()
    p = np.asarray(p_frontal, dtype=np.float64)
    unknown = projection == UNKNOWN
    scored = unknown & ~np.isnan(p)
    projection[scored] = np.where(p[scored] >= 0.5, FRONTAL, LATERAL)
    opposite = {FRONTAL: LATERAL, LATERAL: FRONTAL}
    for rows in table.groupby("uid", sort=False).indices.values():
        if len(rows) != 2 or not unknown[rows].any():
            continue
        first, second = rows
        if not unknown[first] or not unknown[second]:
            known, missing = (first, second) if not unknown[first] else (second, first)
            projection[missing] = opposite.get(projection[known], UNKNOWN)
        elif scored[first] and scored[second]:
            frontal_first = p[first] >= p[second]
            projection[first] = FRONTAL if frontal_first else LATERAL
            projection[second] = LATERAL if frontal_first else FRONTAL
    return projection
