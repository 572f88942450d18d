"""The lateral chest radiograph: a plausible silhouette without findings.

Convention of the real archive's lateral films: the patient faces the image's left, so anterior
(sternum, heart) is at u < 0 and posterior (spine) at u > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chestclip.phantom.exposure import Exposure, sample_exposure
from chestclip.phantom.shapes import (
    Pose,
    band_profile,
    bump_profile,
    cylinder_profile,
    ellipse_radius,
    in_strips,
    smoothstep,
    soft_inside,
    upsample,
    working_grid,
)


@dataclass(frozen=True)
class LateralAnatomy:
    """Every random choice behind one lateral radiograph except pixel noise."""

    pose: Pose
    exposure: Exposure
    depth: float  # half the antero-posterior diameter of the chest
    dome_level: float
    heart_size: float
    tissue: float
    air: float
    bone: float
    vertebra_height: float
    texture_seed: int


def sample_lateral_anatomy(rng: np.random.Generator) -> LateralAnatomy:
    """Draw patient build, position and acquisition for one lateral view."""
    pose = Pose(
        shift_u=float(rng.normal(0.0, 0.03)),
        shift_v=float(rng.normal(0.03, 0.03)),
        angle=float(np.deg2rad(rng.normal(0.0, 2.5))),
        scale=float(rng.uniform(0.88, 1.0)),
    )
    return LateralAnatomy(
        pose=pose,
        exposure=sample_exposure(rng),
        depth=float(rng.uniform(0.74, 0.84)),
        dome_level=float(rng.uniform(0.5, 0.6)),
        heart_size=float(rng.uniform(0.26, 0.31)),
        tissue=float(rng.uniform(1.0, 1.2)),
        air=float(rng.uniform(0.45, 0.55)),
        bone=float(rng.uniform(0.25, 0.32)),
        vertebra_height=float(rng.uniform(0.095, 0.11)),
        texture_seed=int(rng.integers(2**31)),
    )


def render_lateral(anatomy: LateralAnatomy, size: int) -> np.ndarray:
    """Project the lateral anatomy onto a ``size`` x ``size`` density map ``[size, size]``."""
    u, v, vessels = working_grid(size, anatomy.pose, anatomy.texture_seed, vessel_cells=48)

    def pixels(u: np.ndarray, v: np.ndarray, vessels: np.ndarray) -> tuple[np.ndarray]:
        """The lateral density on one strip."""
        return (_lateral_pixels(anatomy, u, v, vessels),)

    return upsample(in_strips(pixels, u, v, vessels)[0], size)


def _lateral_pixels(
    anatomy: LateralAnatomy, u: np.ndarray, v: np.ndarray, vessels: np.ndarray
) -> np.ndarray:
    """Density of the lateral view at points (u, v)."""
    depth = np.float32(anatomy.depth)

    torso_radius = (
        np.abs(u / (depth + 0.1)) ** 2.5 + np.abs((v - 0.3) / np.float32(1.3)) ** 2.5
    ) ** (1.0 / 2.5)
    torso = cylinder_profile(torso_radius)
    neck = cylinder_profile(np.abs(u - 0.1) / np.float32(0.3)) * soft_inside(-0.5 - v, 0.3)
    arms = cylinder_profile(ellipse_radius(u, v, (-0.05, -0.82), (0.55, 0.35)))
    body = np.maximum(np.maximum(torso, 0.8 * neck), 0.6 * arms)
    density = np.float32(anatomy.tissue) * body

    # one shadow for both lungs: the domes slope down towards the posterior sulcus
    taper = 1.0 - 0.35 * np.clip(-(v + 0.05) / np.float32(0.75), 0.0, 1.0)
    du = (u - 0.04) / ((depth - 0.12) * taper)
    dv = (v + 0.05) / np.float32(0.75)
    inside = (1.0 - np.sqrt(du * du + dv * dv)) * (depth - 0.12)
    dome = anatomy.dome_level - 0.14 * np.exp(-(((u + 0.05) / 0.4) ** 2)) + 0.12 * u
    lungs = soft_inside(np.minimum(inside, dome - v), 0.03)
    second_dome = soft_inside(np.minimum(inside, dome + 0.05 - v), 0.03) - lungs

    heart_center = (-0.22, anatomy.dome_level - 0.22)
    heart_radii = (anatomy.heart_size + 0.04, anatomy.heart_size)
    heart = smoothstep((1.0 - ellipse_radius(u, v, heart_center, heart_radii, 0.6)) / 0.25)
    # aortic arch over the hilum, continuing as the descending aorta in front of the spine
    arch_radius = ellipse_radius(u, v, (0.12, -0.2), (0.17, 0.15))
    arch = band_profile(arch_radius - 1.0, 0.35) * soft_inside(-0.22 - v, 0.1)
    descending = band_profile(u - (anatomy.depth - 0.42), 0.06) * soft_inside(v + 0.2, 0.1)
    occlusion = 0.6 * heart + 0.2 * np.maximum(arch, descending)
    hilum = ellipse_radius(u, v, (0.06, -0.05), (0.25, 0.3))
    markings = np.exp(-2.0 * hilum) * (0.3 * vessels + 0.4 * bump_profile(hilum * 2.0))
    air_depth = 0.6 + 0.4 * smoothstep(inside / 0.2)
    air = (lungs + 0.5 * second_dome) * (np.float32(anatomy.air) * air_depth - 0.3 * markings)
    density -= air * (1.0 - occlusion)
    trachea_u = 0.0 + 0.12 * (v + 1.0) / 0.85
    trachea = soft_inside(0.035 - np.abs(u - trachea_u), 0.02) * soft_inside(-0.15 - v, 0.1)
    density -= 0.12 * trachea * np.minimum(body * 3.0, 1.0)
    bubble = ellipse_radius(u, v, (-0.15, anatomy.dome_level + 0.1), (0.1, 0.05))
    density -= 0.12 * bump_profile(bubble)

    spine_u = depth - 0.22 + 0.08 * (v - 0.1) ** 2
    disc = np.abs(np.cos(np.float32(np.pi) * v / np.float32(anatomy.vertebra_height)))
    endplates = 0.7 + 0.3 * smoothstep((1.0 - disc) * 8.0)
    vertebrae = cylinder_profile(np.abs(u - spine_u) / np.float32(0.09)) * endplates
    processes = 0.4 * bump_profile(np.abs(u - spine_u - 0.14) / np.float32(0.05))
    rib_phase = (v - 0.4 * (u - spine_u)) / np.float32(0.13)
    ribs = band_profile((rib_phase - np.round(rib_phase)) * 0.13, 0.02)
    ribs *= soft_inside(u - 0.05, 0.2) * lungs
    sternum = band_profile(u - (-depth + 0.07 + 0.05 * (v + 0.3) ** 2), 0.03)
    sternum *= soft_inside(np.minimum(v + 0.55, 0.3 - v), 0.05)
    bones = (0.8 * vertebrae + processes + 0.2 * ribs + 0.7 * sternum) * soft_inside(
        torso - 0.15, 0.1
    )
    density += np.float32(anatomy.bone) * bones
    return density.astype(np.float32)
