"""Acquisition differences the generator does not draw, applied to a rendered radiograph.

Patient position (shift, rotation, zoom), collimation (bright or black bands along the film's
edges, a non-square film padded to a square), exposure (gain, offset, gamma, noise), a burned-in
marker and a mirrored display. Real films differ in all of these, so whatever must not depend on
them (view inference, ``chestclip.data.views``) is measured on phantoms passed through
``vary_acquisition``. Lesion masks are not transformed: use it where masks are not needed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

CONDITIONS = ("clean", "position", "collimation", "exposure", "mirror", "all")


def vary_acquisition(
    image: np.ndarray, rng: np.random.Generator, condition: str = "all", strength: float = 1.0
) -> np.ndarray:
    """``image`` uint8 [S, S] as acquired differently: ``condition`` names one kind of
    difference (see ``CONDITIONS``), ``"all"`` draws every kind, ``"clean"`` none;
    ``strength`` scales the spread of every difference (1: as described in each function)."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {', '.join(CONDITIONS)}, not {condition!r}")
    every = condition == "all"
    x = image
    if every or condition == "position":
        x = _reposition(x, rng, strength)
    x = x.astype(np.float32) / 255.0
    if every or condition == "exposure":
        x = _expose(x, rng, strength)
    if every or condition == "collimation":
        x = _collimate(x, rng, strength)
    if every:
        x = _marker(x, rng)
    if condition == "mirror" or (every and rng.random() < 0.5):
        x = x[:, ::-1]
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _reposition(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Shift (about 5 % of the film), rotate (about 5 degrees) and zoom (0.8-1.25) the patient."""
    size = image.shape[0]
    zoom = float(np.exp(np.clip(rng.normal(0.0, 0.1 * strength), -0.22, 0.22 * strength)))
    shift = tuple(float(s) for s in rng.normal(0.0, 0.05 * strength, 2) * size)
    angle = float(rng.normal(0.0, 5.0 * strength))
    moved = Image.fromarray(image).rotate(
        angle, Image.Resampling.BILINEAR, translate=shift, fillcolor=0
    )
    width = max(2, round(size * zoom))
    scaled = moved.resize((width, width), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(scaled, ((size - width) // 2, (size - width) // 2))
    return np.asarray(canvas)


def _expose(x: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Another detector gain (0.7-1.2), offset (about 0.08), gamma (about x1.35), noise."""
    gain = 1.0 + rng.uniform(-0.3, 0.2) * strength
    offset, gamma = rng.normal(0.0, 0.08 * strength), np.exp(rng.normal(0.0, 0.3 * strength))
    x = np.clip(x * gain + offset, 0.0, 1.0) ** np.float32(gamma)
    return x + rng.normal(0.0, rng.uniform(0.0, 0.04 * strength), x.shape).astype(np.float32)


def _collimate(x: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Bands (2-15 % wide, unexposed white or cropped black) on some edges; a non-square film
    (75-100 % of the square)."""
    x, size = x.copy(), x.shape[0]
    for edge in range(4):
        if rng.random() < 0.5:
            width = max(1, int(min(rng.uniform(0.02, 0.15) * strength, 0.3) * size))
            band = (slice(0, width), slice(size - width, size))[edge % 2]
            value = 1.0 if rng.random() < 0.5 else 0.0
            if edge < 2:
                x[band] = value
            else:
                x[:, band] = value
    if rng.random() < 0.5:  # the film was not square: prepare pads it with black
        kept = int(size * (1.0 - min(rng.uniform(0.0, 0.25) * strength, 0.5)))
        start = (size - kept) // 2
        padded = np.zeros_like(x)
        if rng.random() < 0.5:
            padded[start : start + kept] = x[start : start + kept]
        else:
            padded[:, start : start + kept] = x[:, start : start + kept]
        x = padded
    return x


def _marker(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A burned-in side marker: a small bright square somewhere on the film, half of the time."""
    if rng.random() < 0.5:
        size = x.shape[0]
        side = max(2, size // 16)
        row, col = rng.integers(0, size - side, 2)
        x = x.copy()
        x[row : row + side, col : col + side] = 1.0
    return x
