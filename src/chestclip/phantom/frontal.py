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
    in_strips,
    smoothstep,
    soft_inside,
    upsample,
    working_grid,
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
    dome_level: float  # v the diaphragm falls to at its edges, near the costophrenic angle
    dome_height: float  # how far the dome's top rises above that level
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
    """A rendered frontal density ``[size, size]`` and the soft regions that made it.

    The regions are kept at render resolution and upsampled on request, as only lesion drawing
    and tests need them.
    """

    density: np.ndarray
    pose: Pose
    regions: dict[str, np.ndarray]  # "right"/"left" lung, "body", "heart", values in [0, 1]

    @property
    def size(self) -> int:
        """Image size in pixels."""
        return self.density.shape[0]

    def region(self, name: str) -> np.ndarray:
        """Soft mask ``[size, size]`` in [0, 1]: "right" or "left" lung, "body" or "heart"."""
        return np.clip(upsample(self.regions[name], self.size), 0.0, 1.0)

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Body coordinates (u, v) of the image's pixels, each ``[size, size]``."""
        return body_grid(self.size, self.pose)


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
        center_u=float(rng.uniform(0.11, 0.16)),
        center_v=float(dome + rng.uniform(-0.3, -0.25)),
        radius_u=float(rng.uniform(0.32, 0.36)),
        radius_v=float(rng.uniform(0.22, 0.25)),
        angle=float(rng.uniform(0.35, 0.55)),
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
    # narrower towards the apex: the half-width shrinks by up to 30 % above the centre
    taper = 1.0 - 0.3 * np.clip((lung.center_v - v) / np.float32(lung.radius_v), 0.0, 1.0)
    dp = (p - np.float32(lung.center_p)) / (np.float32(lung.radius_p) * taper)
    dv = (v - np.float32(lung.center_v)) / np.float32(lung.radius_v)
    inside_ellipse = (1.0 - np.sqrt(dp * dp + dv * dv)) * np.float32(lung.radius_p)
    below_dome = dome_line(lung, p) - v
    medial = lung.medial + 0.05 * smoothstep((v + 0.2) / 0.7)
    lateral_of_mediastinum = p - medial
    return np.minimum(np.minimum(inside_ellipse, below_dome), lateral_of_mediastinum)


def dome_line(lung: Lung, p: np.ndarray) -> np.ndarray:
    """v of the diaphragm dome under the lung at lateral coordinate ``p``."""
    peak = np.float32(lung.center_p - 0.1 * lung.radius_p)
    return lung.dome_level - lung.dome_height * np.exp(-(((p - peak) / np.float32(0.22)) ** 2))


def costophrenic_angle(lung: Lung) -> tuple[float, float]:
    """(p, v) where the dome meets the lateral chest wall: the lowest lateral point of the lung."""
    for v in np.linspace(lung.center_v, lung.center_v + lung.radius_v, 200):
        lateral = lung_span(lung, float(v))[1]
        if v >= float(dome_line(lung, np.float32(lateral))):
            return lateral, float(v)
    return lung_span(lung, lung.center_v + lung.radius_v)[1], lung.center_v + lung.radius_v


def lung_span(lung: Lung, v: float) -> tuple[float, float]:
    """Medial and lateral p of the lung at height ``v`` (ignoring the dome)."""
    rel = min(abs(v - lung.center_v) / lung.radius_v, 0.95)
    taper = 1.0 - 0.3 * min(max((lung.center_v - v) / lung.radius_v, 0.0), 1.0)
    lateral = lung.center_p + lung.radius_p * taper * float(np.sqrt(1.0 - rel * rel))
    medial = lung.medial + 0.05 * float(smoothstep(np.float32((v + 0.2) / 0.7)))
    return medial, lateral


def render_frontal(anatomy: FrontalAnatomy, size: int, heart: Heart | None = None) -> FrontalScene:
    """Project the frontal anatomy onto a ``size`` x ``size`` density map (no lesions).

    ``heart`` overrides the anatomy's heart (cardiomegaly); everything else is fixed by
    ``anatomy``, so two calls with the same arguments give identical arrays.
    """
    heart = heart or anatomy.heart
    u, v, vessels = working_grid(size, anatomy.pose, anatomy.texture_seed, vessel_cells=56)

    def pixels(u: np.ndarray, v: np.ndarray, vessels: np.ndarray) -> tuple[np.ndarray, ...]:
        """The frontal fields on one strip."""
        return _frontal_pixels(anatomy, heart, u, v, vessels)

    density, right, left, body, heart_profile = in_strips(pixels, u, v, vessels)
    regions = {"right": right, "left": left, "body": body, "heart": heart_profile}
    return FrontalScene(upsample(density, size), anatomy.pose, regions)


def _frontal_pixels(
    anatomy: FrontalAnatomy, heart: Heart, u: np.ndarray, v: np.ndarray, vessels: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Density, right and left lung masks, body mask and heart profile at points (u, v)."""
    torso_radius = (
        np.abs(u / np.float32(0.94)) ** 3 + np.abs((v - 0.3) / np.float32(1.3)) ** 3
    ) ** (1.0 / 3.0)
    torso = cylinder_profile(torso_radius)
    neck = cylinder_profile(np.abs(u) / np.float32(0.24)) * soft_inside(-0.5 - v, 0.3)
    shoulders = cylinder_profile(ellipse_radius(np.abs(u), v, (0.5, -0.58), (0.55, 0.3)))
    body = np.maximum(np.maximum(torso, 0.8 * neck), 0.8 * shoulders)
    density = np.float32(anatomy.tissue) * body

    heart_profile = cylinder_profile(ellipse_radius(u, v, *_heart_ellipse(heart)))
    knob = cylinder_profile(ellipse_radius(u, v, (0.1, -0.33), (0.07, 0.065)))
    occlusion = np.clip(2.5 * heart_profile + 0.9 * knob, 0.0, 1.0)

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
    density -= air * (1.0 - occlusion)
    density += 0.05 * heart_profile

    left = anatomy.lungs["left"]
    bubble = ellipse_radius(u, v, (left.center_p, left.dome_level + 0.08), (0.09, 0.05))
    density -= 0.15 * bump_profile(bubble)
    trachea = soft_inside(0.03 - np.abs(u), 0.02) * soft_inside(-0.3 - v, 0.15)
    density -= 0.2 * trachea
    visible_lung = (lungs["right"] + lungs["left"]) * (1.0 - occlusion)
    density += np.float32(anatomy.bone) * _bones(anatomy, u, v, visible_lung)
    body_mask = soft_inside(body - 0.05, 0.05)
    return density, lungs["right"], lungs["left"], body_mask, heart_profile


def _heart_ellipse(heart: Heart) -> tuple[tuple[float, float], tuple[float, float], float]:
    """Centre, radii and angle of the heart ellipse, as ``ellipse_radius`` takes them."""
    return (heart.center_u, heart.center_v), (heart.radius_u, heart.radius_v), heart.angle


def _bones(
    anatomy: FrontalAnatomy, u: np.ndarray, v: np.ndarray, visible_lung: np.ndarray
) -> np.ndarray:
    """Relative bone density ``[H, W]``: spine, ribs, clavicles and shoulder girdle."""
    vertebrae = 0.7 + 0.3 * np.cos(np.float32(np.pi / 0.085) * v) ** 2
    bones = 0.5 * cylinder_profile(np.abs(u) / np.float32(0.065)) * vertebrae
    # ribs read best against lung air; over the abdomen and heart they wash out
    rib_visibility = 0.3 + 0.7 * visible_lung
    spacing = np.float32(anatomy.rib_spacing)
    for side in SIDES:
        lung = anatomy.lungs[side]
        p = np.float32(IMAGE_SIGN[side]) * u
        cage_radius = ellipse_radius(
            p, v, (lung.center_p, lung.center_v + 0.05), (lung.radius_p + 0.07, lung.radius_v + 0.1)
        )
        cage = soft_inside(1.0 - cage_radius, 0.1) * soft_inside(p - 0.05, 0.04)
        phase = (v - np.float32(anatomy.rib_curvature) * p * p) / spacing - anatomy.rib_offset
        rib = np.round(phase)
        across = (phase - rib) * spacing
        half_width = 0.018 + 0.014 * p  # ribs widen laterally
        # a rib's cortex is denser than its marrow; ribs differ a little from one another
        posterior = band_profile(across, half_width) * (0.75 + 0.25 * (across / half_width) ** 2)
        posterior *= 0.85 + 0.15 * np.cos(2.3 * rib + anatomy.rib_offset * 6.0)
        posterior *= soft_inside(phase + 7.5, 1.0) * soft_inside(4.0 - phase, 1.0)
        phase = (v + 0.45 * p) / (spacing * 1.15) - anatomy.rib_offset
        anterior = band_profile((phase - np.round(phase)) * spacing * 1.15, 0.035)
        anterior *= soft_inside(0.8 - p, 0.1) * soft_inside(0.25 - v, 0.3)
        bones += cage * rib_visibility * (0.4 * posterior + 0.12 * anterior)

        clavicle_v = anatomy.clavicle_level - 0.3 * p + 0.2 * p * p
        clavicle_ends = soft_inside(np.minimum(p - 0.05, 0.66 - p), 0.06)
        clavicle = band_profile(v - clavicle_v, 0.032) * clavicle_ends
        humerus = cylinder_profile(ellipse_radius(p, v, (1.04, -0.6), (0.1, 0.12)))
        scapula = bump_profile(ellipse_radius(p, v, (0.76, -0.38), (0.15, 0.3)))
        bones += 0.9 * clavicle + 0.8 * humerus + 0.25 * scapula
    return bones
