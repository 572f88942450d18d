"""Inputs a chest X-ray model should refuse, made offline: the out-of-distribution benchmark set
(``benchmarks/bench_ood.py``) and the guard's tests.

``MADE``: kinds drawn from nothing (natural-scene-like photographs, rendered documents, other
body parts and modalities, blank films, noise), each ``(rng, size) -> uint8 [H, W]`` or RGB
``[H, W, 3]`` of a random aspect, as a user's file would be. ``DAMAGED``: what can go wrong with a
real chest X-ray (inverted, rotated, heavily cropped), each ``(image, rng) -> uint8 [H, W]``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from chestclip.phantom.shapes import cylinder_profile, ellipse_radius, smooth_field

WORDS = (
    "invoice", "total", "amount", "patient", "date", "report", "account", "number", "page",
    "signature", "please", "remit", "payment", "order", "item", "price", "tax", "due", "notes",
)  # fmt: skip


def _canvas(rng: np.random.Generator, size: int) -> tuple[int, int]:
    """A random (width, height) with the longer side ``size`` and aspect 0.6 to 1."""
    short = int(size * rng.uniform(0.6, 1.0))
    return (size, short) if rng.random() < 0.5 else (short, size)


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in [-1, 1] across each axis, float32 [H, W] each."""
    u = np.linspace(-1, 1, width, dtype=np.float32)[None, :].repeat(height, 0)
    v = np.linspace(-1, 1, height, dtype=np.float32)[:, None].repeat(width, 1)
    return u, v


def _radiograph(density: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Density [H, W] → an 8-bit film with the phantoms' look (bright = dense, grain)."""
    brightness = 1.0 - np.exp(-rng.uniform(1.3, 1.9) * np.maximum(density, 0.0))
    noisy = brightness + rng.normal(0.0, 0.015, density.shape)
    return np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)


def photo(rng: np.random.Generator, size: int) -> np.ndarray:
    """An outdoor scene: sky, ground, a sun, buildings and people, in colour with texture."""
    width, height = _canvas(rng, size)
    horizon = int(height * rng.uniform(0.45, 0.7))
    sky = np.linspace(0, 1, horizon)[:, None, None] * rng.uniform(0.2, 0.5)
    scene = np.empty((height, width, 3))
    scene[:horizon] = np.array([0.35, 0.55, 0.9]) + sky
    scene[horizon:] = rng.uniform([0.2, 0.35, 0.1], [0.5, 0.6, 0.3])
    scene += 0.12 * smooth_field(rng, 12, max(width, height))[:height, :width, None]
    image = Image.fromarray(np.clip(scene * 255, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    sun = rng.uniform([0.1, 0.05], [0.9, 0.3]) * [width, height]
    draw.ellipse([*(sun - size * 0.06), *(sun + size * 0.06)], fill=(255, 236, 150))
    for _ in range(int(rng.integers(2, 6))):  # buildings on the horizon
        x0, w, h = rng.uniform(0, width), rng.uniform(0.08, 0.2) * width, rng.uniform(0.1, 0.4)
        colour = tuple(int(c) for c in rng.integers(60, 200, 3))
        draw.rectangle([x0, horizon - h * height, x0 + w, horizon], fill=colour)
    for _ in range(int(rng.integers(1, 4))):  # people: a head and a body
        x, scale = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.25) * height
        foot = horizon + rng.uniform(0.1, 0.3) * (height - horizon)
        colour = tuple(int(c) for c in rng.integers(30, 230, 3))
        draw.rectangle([x - scale * 0.2, foot - scale, x + scale * 0.2, foot], fill=colour)
        draw.ellipse(
            [x - scale * 0.15, foot - scale * 1.35, x + scale * 0.15, foot - scale], fill=colour
        )
    return np.asarray(image.filter(ImageFilter.GaussianBlur(0.8)))


def document(rng: np.random.Generator, size: int) -> np.ndarray:
    """A scanned page of printed text (PIL's built-in font), greyish paper, slightly skewed."""
    width, height = _canvas(rng, size)
    page = Image.new("L", (width, height), int(rng.integers(215, 250)))
    draw = ImageDraw.Draw(page)
    step = max(8, int(height * rng.uniform(0.03, 0.06)))
    for y in range(step, height - step, step):
        words = rng.choice(WORDS, size=int(rng.integers(3, 12)))
        draw.text((int(width * 0.06), y), " ".join(words).capitalize(), fill=20)
    if rng.random() < 0.5:  # a table's rules
        for y in range(height // 2, height - step, 2 * step):
            draw.line([(width * 0.05, y), (width * 0.95, y)], fill=60, width=1)
    return np.asarray(page.rotate(rng.uniform(-3, 3), fillcolor=230))


def limb(rng: np.random.Generator, size: int) -> np.ndarray:
    """A forearm or lower-leg film: two long bones in a soft-tissue sleeve on black."""
    width, height = _canvas(rng, size)
    u, v = _grid(width, height)
    angle = rng.uniform(-0.4, 0.4)
    across = np.cos(angle) * u + np.sin(angle) * v
    tissue = cylinder_profile(np.abs(across) / rng.uniform(0.3, 0.45))
    density = 0.8 * tissue
    for offset in (-0.1, 0.1):
        bone = cylinder_profile(np.abs(across - offset) / rng.uniform(0.04, 0.07))
        density += 1.2 * bone
    return _radiograph(density, rng)


def skull(rng: np.random.Generator, size: int) -> np.ndarray:
    """A skull film: a dense cranial vault around the brain, orbits and a jaw."""
    width, height = _canvas(rng, size)
    u, v = _grid(width, height)
    radii = (rng.uniform(0.55, 0.75), rng.uniform(0.65, 0.85))
    head = cylinder_profile(ellipse_radius(u, v, (0.0, -0.1), radii))
    inner = cylinder_profile(ellipse_radius(u, v, (0.0, -0.1), (radii[0] - 0.06, radii[1] - 0.06)))
    density = 0.9 * head + 1.5 * (head - inner)
    for side in (-1, 1):
        density -= 0.3 * cylinder_profile(ellipse_radius(u, v, (0.22 * side, 0.15), (0.13, 0.1)))
    density += 0.8 * cylinder_profile(ellipse_radius(u, v, (0.0, 0.75), (0.4, 0.12)))
    return _radiograph(density, rng)


def ct_slice(rng: np.random.Generator, size: int) -> np.ndarray:
    """An axial chest CT slice: body outline, dark lungs, heart, a vertebra, on black."""
    width, height = _canvas(rng, size)
    u, v = _grid(width, height)
    body = ellipse_radius(u, v, (0.0, 0.0), (0.85, 0.6)) < 1
    image = np.where(body, 0.45, 0.0)
    for side in (-1, 1):
        lung = ellipse_radius(u, v, (0.4 * side, -0.05), (0.3, 0.4)) < 1
        image = np.where(lung, 0.08, image)
    image = np.where(ellipse_radius(u, v, (0.1, 0.05), (0.22, 0.2)) < 1, 0.55, image)
    image = np.where(ellipse_radius(u, v, (0.0, 0.45), (0.1, 0.1)) < 1, 0.95, image)
    noisy = image + rng.normal(0, 0.03, image.shape)
    return np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)


def ultrasound(rng: np.random.Generator, size: int) -> np.ndarray:
    """A sector scan: a fan of speckle on black, brighter and coarser with depth."""
    width, height = _canvas(rng, size)
    u, v = _grid(width, height)
    depth = np.hypot(u, v + 1.0) / 2.0
    fan = (np.abs(np.arctan2(u, v + 1.0)) < rng.uniform(0.5, 0.8)) & (depth < 0.95)
    speckle = rng.rayleigh(0.25, u.shape) * (
        0.5 + 0.5 * smooth_field(rng, 20, max(u.shape))[: u.shape[0], : u.shape[1]]
    )
    return np.clip(np.rint(np.where(fan, speckle, 0) * 255), 0, 255).astype(np.uint8)


def blank(rng: np.random.Generator, size: int) -> np.ndarray:
    """A film with nothing on it: one grey level (black to white) and faint grain."""
    width, height = _canvas(rng, size)
    level = rng.choice([0.0, 1.0, rng.uniform(0.1, 0.9)])
    noisy = level + rng.normal(0.0, 0.01, (height, width))
    return np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)


def noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Pure pixel noise: uniform, or smooth blobs."""
    width, height = _canvas(rng, size)
    if rng.random() < 0.5:
        return rng.integers(0, 256, (height, width), dtype=np.uint8)
    field = smooth_field(rng, 16, max(width, height))[:height, :width]
    return np.clip(np.rint(127 + 60 * field), 0, 255).astype(np.uint8)


def inverted(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Negative film (e.g. MONOCHROME1 read without inversion)."""
    return 255 - image


def rotated(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turned by 90°, 180° or 270° (a scanner or viewer orientation error)."""
    return np.rot90(image, int(rng.integers(1, 4))).copy()


def cropped(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A window of 20 to 35 % of each side somewhere in the film (a zoomed detail)."""
    height, width = image.shape
    side = rng.uniform(0.2, 0.35)
    h, w = max(1, int(height * side)), max(1, int(width * side))
    y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    return image[y : y + h, x : x + w].copy()


MADE: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "photo": photo,
    "document": document,
    "limb": limb,
    "skull": skull,
    "ct_slice": ct_slice,
    "ultrasound": ultrasound,
    "blank": blank,
    "noise": noise,
}
DAMAGED: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "inverted": inverted,
    "rotated": rotated,
    "cropped": cropped,
}
