"""The frontal (PA) chest radiograph: anatomy parameters and their projected density.

Radiological convention, used throughout the phantom package: a PA film is viewed as if facing the
patient, so the patient's RIGHT is on the image's LEFT. ``IMAGE_SIGN`` is the one place that encodes
this: body coordinate u < 0 is the patient's right lung, u > 0 the left lung, and the heart sits at
u > 0 (the patient's left). The lesion drawing, the truth file and the report text all take their
side from here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from chestclip.phantom.exposure import Exposure, sample_exposure
from chestclip.phantom.shapes import (
    Pose,
    band_profile,
    body_grid,
    bump_profile,
    cylinder_profile,
    ellipse_radius,
    smooth_field,
    smoothstep,
    soft_inside,
)

SIDES = ("right", "left")
IMAGE_SIGN = {"right": -1.0, "left": 1.0}  # patient's right lung is on the image's left (u < 0)


@dataclass(frozen=True)
class Heart:
    """Heart silhouette: an ellipse in body coordinates, tilted (radians)."""

    center_u: float
    center_v: float
    radius_u: float
    radius_v: float
    angle: float


@dataclass(frozen=True)
class Lung:
    """One lung field in lateral coordinates p = IMAGE_SIGN[side] * u (p > 0 away from midline)."""

    center_p: float
    center_v: float
    radius_p: float
    radius_v: float
    dome_level: float  # v of the costophrenic angle
    dome_height: float  # how far the dome rises above that level
    medial: float  # p of the mediastinal border


@dataclass(frozen=True)
class FrontalAnatomy:
    """Every random choice behind one frontal radiograph except lesions and pixel noise."""

    pose: Pose
    exposure: Exposure
    lungs: dict[str, Lung]
    heart: Heart
    tissue: float
    air: float
    bone: float
    rib_spacing: float
    rib_curvature: float
    rib_offset: float
    clavicle_level: float
    texture_seed: int


@dataclass(frozen=True)
class FrontalScene:
    """A rendered frontal density ``[H, W]`` with the grids and soft region masks that made it."""

    density: np.ndarray
    u: np.ndarray
    v: np.ndarray
    lungs: dict[str, np.ndarray]  # soft lung masks in [0, 1] by patient side
    body: np.ndarray  # soft body mask in [0, 1]
    heart: np.ndarray  # heart profile in [0, 1]


def sample_frontal_anatomy(rng: np.random.Generator) -> FrontalAnatomy:
    """Draw patient build, position and acquisition for one frontal view."""
    pose = Pose(
        shift_u=float(rng.normal(0.0, 0.03)),
        shift_v=float(rng.normal(0.03, 0.03)),
        angle=float(np.deg2rad(rng.normal(0.0, 2.0))),
        scale=float(rng.uniform(0.88, 1.0)),
    )
    lung_width = rng.uniform(0.33, 0.39)
    lung_height = rng.uniform(0.74, 0.82)
    dome = rng.uniform(0.48, 0.58)
    lungs = {
        side: Lung(
            center_p=float(0.09 + lung_width + rng.normal(0.0, 0.01)),
            center_v=float(rng.normal(-0.02, 0.02)),
            radius_p=float(lung_width * rng.uniform(0.97, 1.03)),
            radius_v=float(lung_height),
            # the right hemidiaphragm sits higher (the liver lies under it)
            dome_level=float(dome + (0.0 if side == "right" else rng.uniform(0.02, 0.07))),
            dome_height=float(rng.uniform(0.09, 0.15)),
            medial=float(rng.uniform(0.07, 0.1)),
        )
        for side in SIDES
    }
    heart = Heart(
        center_u=float(rng.uniform(0.07, 0.13)),
        center_v=float(dome + rng.uniform(-0.2, -0.14)),
        radius_u=float(rng.uniform(0.27, 0.31)),
        radius_v=float(rng.uniform(0.21, 0.25)),
        angle=float(rng.uniform(0.25, 0.45)),
    )
    return FrontalAnatomy(
        pose=pose,
        exposure=sample_exposure(rng),
        lungs=lungs,
        heart=heart,
        tissue=float(rng.uniform(0.9, 1.1)),
        air=float(rng.uniform(0.5, 0.62)),
        bone=float(rng.uniform(0.22, 0.3)),
        rib_spacing=float(rng.uniform(0.12, 0.14)),
        rib_curvature=float(rng.uniform(0.4, 0.6)),
        rib_offset=float(rng.uniform(0.0, 1.0)),
        clavicle_level=float(rng.uniform(-0.7, -0.62)),
        texture_seed=int(rng.integers(2**31)),
    )


def enlarged_heart(heart: Heart, growth: float) -> Heart:
    """The heart grown by ``growth`` (0.2 = 20 % wider), mostly towards the patient's left."""
    return replace(
        heart,
        center_u=heart.center_u + 0.45 * growth * heart.radius_u,
        center_v=heart.center_v + 0.25 * growth * heart.radius_v,
        radius_u=heart.radius_u * (1.0 + growth),
        radius_v=heart.radius_v * (1.0 + 0.6 * growth),
    )


def lung_signed_distance(lung: Lung, p: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Approximate signed distance to the lung border (> 0 inside) in lateral coordinates."""
    radius = ellipse_radius(p, v, (lung.center_p, lung.center_v), (lung.radius_p, lung.radius_v))
    inside_ellipse = (1.0 - radius) * np.float32(lung.radius_p)
    dome_peak = lung.center_p - 0.1 * lung.radius_p
    dome = lung.dome_level - lung.dome_height * np.exp(-(((p - dome_peak) / 0.22) ** 2))
    below_dome = dome - v
    medial = lung.medial + 0.05 * smoothstep((v + 0.2) / 0.7)
    lateral_of_mediastinum = p - medial
    return np.minimum(np.minimum(inside_ellipse, below_dome), lateral_of_mediastinum)


def lung_span(lung: Lung, v: float) -> tuple[float, float]:
    """Medial and lateral p of the lung at height ``v`` (ignoring the dome)."""
    rel = min(abs(v - lung.center_v) / lung.radius_v, 0.95)
    lateral = lung.center_p + lung.radius_p * float(np.sqrt(1.0 - rel * rel))
    medial = lung.medial + 0.05 * float(smoothstep(np.float32((v + 0.2) / 0.7)))
    return medial, lateral


def render_frontal(anatomy: FrontalAnatomy, size: int, heart: Heart | None = None) -> FrontalScene:
    """Project the frontal anatomy onto a ``size`` x ``size`` density map (no lesions).

    ``heart`` overrides the anatomy's heart (cardiomegaly); everything else is fixed by
    ``anatomy``, so two calls with the same arguments give identical arrays.
    """
    heart = heart or anatomy.heart
    u, v = body_grid(size, anatomy.pose)
    texture_rng = np.random.default_rng(anatomy.texture_seed)

    torso = cylinder_profile(ellipse_radius(u, v, (0.0, 0.28), (0.9, 1.28)))
    neck = cylinder_profile(np.abs(u) / np.float32(0.19)) * soft_inside(-0.5 - v, 0.2)
    shoulders = cylinder_profile(ellipse_radius(np.abs(u), v, (0.6, -0.64), (0.46, 0.24)))
    body = np.maximum(np.maximum(torso, 0.8 * neck), 0.85 * shoulders)
    density = np.float32(anatomy.tissue) * body

    heart_profile = cylinder_profile(ellipse_radius(u, v, *_heart_ellipse(heart)))
    knob = cylinder_profile(ellipse_radius(u, v, (heart.center_u + 0.02, -0.34), (0.075, 0.07)))
    occlusion = np.clip(heart_profile + knob, 0.0, 1.0)

    vessels = np.exp(-3.0 * smooth_field(texture_rng, 56, size) ** 2)
    lungs: dict[str, np.ndarray] = {}
    air = np.zeros_like(u)
    for side in SIDES:
        lung = anatomy.lungs[side]
        p = np.float32(IMAGE_SIGN[side]) * u
        signed = lung_signed_distance(lung, p, v)
        lungs[side] = soft_inside(signed, 0.03)
        depth = 0.55 + 0.45 * smoothstep(signed / 0.15)
        hilum = ellipse_radius(p, v, (lung.medial + 0.08, lung.center_v - 0.02), (0.3, 0.45))
        markings = np.exp(-2.0 * hilum) * (0.35 * vessels + 0.4 * bump_profile(hilum * 2.2))
        air += lungs[side] * (np.float32(anatomy.air) * depth - markings * 0.3)
    density -= air * (1.0 - 0.85 * occlusion)
    density += 0.12 * heart_profile

    left = anatomy.lungs["left"]
    bubble = ellipse_radius(u, v, (left.center_p, left.dome_level + 0.08), (0.09, 0.05))
    density -= 0.15 * bump_profile(bubble)
    trachea = soft_inside(0.03 - np.abs(u), 0.02) * soft_inside(-0.3 - v, 0.15)
    density -= 0.2 * trachea
    density += np.float32(anatomy.bone) * _bones(anatomy, u, v)

    return FrontalScene(
        density=density.astype(np.float32),
        u=u,
        v=v,
        lungs=lungs,
        body=soft_inside(body - 0.05, 0.05),
        heart=heart_profile,
    )


def _heart_ellipse(heart: Heart) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Centre, radii and angle of the heart ellipse, as ``ellipse_radius`` takes them."""
    return (heart.center_u, heart.center_v), (heart.radius_u, heart.radius_v), heart.angle


def _bones(anatomy: FrontalAnatomy, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Relative bone density ``[H, W]``: spine, posterior and anterior ribs, clavicles, shoulders."""
    vertebrae = 0.7 + 0.3 * np.cos(np.float32(np.pi / 0.085) * v) ** 2
    bones = 0.9 * cylinder_profile(np.abs(u) / np.float32(0.065)) * vertebrae
    spacing = np.float32(anatomy.rib_spacing)
    for side in SIDES:
        lung = anatomy.lungs[side]
        p = np.float32(IMAGE_SIGN[side]) * u
        cage_radius = ellipse_radius(
            p, v, (lung.center_p, lung.center_v + 0.05), (lung.radius_p + 0.07, lung.radius_v + 0.1)
        )
        cage = soft_inside(1.0 - cage_radius, 0.1) * soft_inside(p - 0.05, 0.04)
        phase = (v - np.float32(anatomy.rib_curvature) * p * p) / spacing - anatomy.rib_offset
        posterior = band_profile((phase - np.round(phase)) * spacing, 0.028)
        posterior *= soft_inside(phase + 7.5, 1.0) * soft_inside(4.0 - phase, 1.0)
        phase = (v + 0.45 * p) / (spacing * 1.15) - anatomy.rib_offset
        anterior = band_profile((phase - np.round(phase)) * spacing * 1.15, 0.035)
        anterior *= soft_inside(0.8 - p, 0.1) * soft_inside(0.25 - v, 0.3)
        bones += cage * (0.9 * posterior + 0.35 * anterior)

        clavicle_v = anatomy.clavicle_level - 0.12 * p + 0.16 * p * p
        clavicle = band_profile(v - clavicle_v, 0.03) * soft_inside(np.minimum(p, 0.62 - p), 0.06)
        humerus = cylinder_profile(ellipse_radius(p, v, (0.92, -0.62), (0.11, 0.12)))
        scapula = bump_profile(ellipse_radius(p, v, (0.74, -0.36), (0.16, 0.3)))
        bones += 1.1 * clavicle + 1.2 * humerus + 0.25 * scapula
    return bones
