"""Frontal films of varied position, scale, rotation, collimation, aspect and exposure, with
their true anatomy: what per-image zones are measured on (``benchmarks/bench_zones.py``, tests).

A :class:`Variation` redraws a study's pose and then damages the film the way acquisitions and
the ``resize: pad`` preparation do; the true lung fields and heart go through the same geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from chestclip.data.images import fit_square
from chestclip.phantom.findings import draw_frontal, visible_fields
from chestclip.phantom.shapes import Pose
from chestclip.phantom.study import StudyPlan


@dataclass(frozen=True)
class Variation:
    """How far films may depart from the generator's own pose and look (0: not at all)."""

    shift: float = 0.0  # body units either way, in each direction
    scale: tuple[float, float] = (0.88, 1.0)
    rotation: float = 0.0  # degrees either way
    collimation: float = 0.0  # up to this share of each side left unexposed (white)
    aspect: float = 1.0  # cropped to an aspect between this and 1, then padded square
    gamma: float = 1.0  # the film's grey levels raised to a power between 1/gamma and gamma


VARIATIONS = {
    "shifted, scaled, rotated": Variation(shift=0.15, scale=(0.7, 1.05), rotation=8.0),
    "collimated, padded": Variation(
        shift=0.1, scale=(0.75, 1.0), rotation=5.0, collimation=0.12, aspect=0.7
    ),
    "exposure": Variation(shift=0.1, scale=(0.75, 1.0), rotation=5.0, gamma=1.8),
}


def varied_frontal(
    plan: StudyPlan,
    variation: Variation | None,
    size: int,
    rng: np.random.Generator,
    visibility: float = 1.0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The study's frontal film uint8 [size, size] under ``variation`` (None: as generated) and
    its true ``right``/``left`` lung fields and ``heart``, boolean [size, size] each."""
    anatomy = plan.frontal
    if variation is not None:
        pose = Pose(
            shift_u=float(rng.uniform(-variation.shift, variation.shift)),
            shift_v=float(rng.uniform(-variation.shift, variation.shift) + 0.03),
            angle=float(np.deg2rad(rng.uniform(-variation.rotation, variation.rotation))),
            scale=float(rng.uniform(*variation.scale)),
        )
        anatomy = replace(anatomy, pose=pose)
    film = draw_frontal(anatomy, plan.findings, size, visibility, plan.frontal_noise_seed).pixels
    truth = visible_fields(anatomy, plan.findings, size, visibility)
    if variation is None:
        return film, truth
    if variation.gamma != 1.0:
        power = variation.gamma ** rng.uniform(-1.0, 1.0)
        film = np.rint(255.0 * (film / 255.0) ** power).astype(np.uint8)
    if variation.collimation:
        film = film.copy()
        top, bottom, left, right = (
            int(size * rng.uniform(0, variation.collimation)) for _ in range(4)
        )
        for region in (
            np.s_[:top],
            np.s_[size - bottom :],
            np.s_[:, :left],
            np.s_[:, size - right :],
        ):
            film[region] = np.clip(rng.normal(245, 3, film[region].shape), 0, 255)
    if variation.aspect < 1.0:
        short = int(size * rng.uniform(variation.aspect, 1.0))
        start = int(rng.integers(0, size - short + 1))
        window = (
            np.s_[:, start : start + short] if rng.random() < 0.5 else np.s_[start : start + short]
        )
        film = fit_square(film[window], size, "pad")
        truth = {
            name: fit_square(mask[window].astype(np.uint8) * 255, size, "pad") > 127
            for name, mask in truth.items()
        }
    return film, truth
