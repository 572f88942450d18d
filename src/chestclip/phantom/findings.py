"""Findings of a phantom study and how they are drawn on the frontal view, with their masks.

Sides are the PATIENT's sides (see ``frontal.IMAGE_SIGN``): a right-sided lesion is drawn in the
lung on the image's left. Lesions add density after the anatomy is rendered and before exposure
and noise; their shapes come from each finding's own ``seed``, so drawing or not drawing them
never changes the anatomy or the noise. At ``visibility == 0`` nothing is drawn and the frontal
image is exactly the image of the same study without findings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from chestclip.phantom.exposure import expose
from chestclip.phantom.frontal import (
    IMAGE_SIGN,
    SIDES,
    FrontalAnatomy,
    Heart,
    costophrenic_angle,
    enlarged_heart,
    lung_span,
    render_frontal,
)
from chestclip.phantom.shapes import bump_profile, ellipse_radius, in_strips, smoothstep

NORMAL_FRACTION = 0.35
SECOND_FINDING_FRACTION = 0.2
KIND_WEIGHTS = {"cardiomegaly": 0.25, "effusion": 0.2, "opacity": 0.35, "nodule": 0.2}
# lobes as they project on a frontal film; the left lung has no middle lobe
LUNG_ZONES = {"right": ("upper", "middle", "lower"), "left": ("upper", "lower")}
ZONE_THIRD = {"upper": 0, "middle": 1, "lower": 2}
NODULE_SIZES_CM = (1.0, 1.2, 1.5, 1.5, 2.0, 2.0, 2.5, 3.0)
CM = 0.055  # body units per centimetre (the thorax is about 1.6 units = 29 cm wide)
MASK_LEVEL = 0.2  # a pixel belongs to a lesion where its shape profile reaches this level

# Density a lesion's core adds at visibility 1, as a fraction of the lung's air (1: about as dense
# as soft tissue). Calibration with these strengths and the sizes below: logistic regression on
# 32x32 frontal images of 400 studies (512 px, 5-fold) reaches ROC-AUC 0.77-0.80 at visibility 1,
# 0.65 at 0.5, 0.86 at 2 and 0.49 at 0; cardiomegaly is the easiest finding, nodules the hardest.
STRENGTH = {"opacity": 1.0, "effusion": 1.0, "nodule": 1.0}
HEART_GROWTH = {"mild": 0.16, "moderate": 0.26}


@dataclass(frozen=True)
class Finding:
    """One localized finding: what, where (patient side, zone) and how much."""

    kind: str  # cardiomegaly | effusion | opacity | nodule
    side: str  # right | left (patient's side) | none (cardiomegaly)
    zone: str  # upper | middle | lower | costophrenic | cardiac
    severity: str  # mild | moderate (heart), small | moderate (effusion), "" otherwise
    size_cm: float  # nodule diameter, 0 for other kinds
    seed: int  # drives the lesion's shape and position within its zone


@dataclass(frozen=True)
class FrontalImage:
    """A rendered frontal radiograph ``[H, W]`` uint8 and one boolean mask per drawn finding."""

    pixels: np.ndarray
    lesions: tuple[tuple[Finding, np.ndarray], ...]


def sample_findings(rng: np.random.Generator) -> tuple[Finding, ...]:
    """Draw the findings of one study: empty (normal) with probability ``NORMAL_FRACTION``."""
    if rng.random() < NORMAL_FRACTION:
        return ()
    count = 2 if rng.random() < SECOND_FINDING_FRACTION else 1
    names = list(KIND_WEIGHTS)
    weights = np.array(list(KIND_WEIGHTS.values()))
    kinds = rng.choice(names, size=count, replace=False, p=weights / weights.sum())
    return tuple(_sample_finding(str(kind), rng) for kind in kinds)


def _sample_finding(kind: str, rng: np.random.Generator) -> Finding:
    """Draw side, zone, severity and shape seed of one finding of ``kind``."""
    side = "none" if kind == "cardiomegaly" else str(rng.choice(("right", "left")))
    if kind == "cardiomegaly":
        zone, severity = "cardiac", str(rng.choice(("mild", "moderate"), p=(0.65, 0.35)))
    elif kind == "effusion":
        zone, severity = "costophrenic", str(rng.choice(("small", "moderate"), p=(0.7, 0.3)))
    else:
        zone, severity = str(rng.choice(LUNG_ZONES[side])), ""
    size_cm = float(rng.choice(NODULE_SIZES_CM)) if kind == "nodule" else 0.0
    return Finding(kind, side, zone, severity, size_cm, int(rng.integers(2**31)))


def draw_frontal(
    anatomy: FrontalAnatomy,
    findings: tuple[Finding, ...],
    size: int,
    visibility: float,
    noise_seed: int,
) -> FrontalImage:
    """Render the frontal view of a study with its findings drawn at ``visibility``.

    Contrast scales linearly with ``visibility``, lesion extent with ``min(1, visibility) ** 0.5``;
    at 0 nothing is drawn and no masks are returned.
    """
    scene = render_frontal(anatomy, size, drawn_heart(anatomy, findings, visibility))
    density = scene.density
    lesions: list[tuple[Finding, np.ndarray]] = []
    if visibility > 0 and findings:
        u, v = scene.grid()
        body = scene.region("body") > 0.5
        for finding in findings:
            if finding.kind == "cardiomegaly":  # already drawn as the enlarged heart
                mask = scene.region("heart") >= MASK_LEVEL
            else:
                lung = scene.region(finding.side)
                profile = _lesion_profile(u, v, lung, anatomy, finding, visibility)
                strength = STRENGTH[finding.kind] * anatomy.air * visibility
                density = density + np.float32(strength) * profile
                mask = profile >= MASK_LEVEL
            mask &= body
            if mask.any():
                lesions.append((finding, mask))
    pixels = expose(density, anatomy.exposure, np.random.default_rng(noise_seed))
    return FrontalImage(pixels=pixels, lesions=tuple(lesions))


def drawn_heart(anatomy: FrontalAnatomy, findings: tuple[Finding, ...], visibility: float) -> Heart:
    """The heart as drawn: enlarged by a cardiomegaly finding, more so at higher visibility."""
    heart = anatomy.heart
    if visibility > 0:
        for finding in findings:
            if finding.kind == "cardiomegaly":
                growth = min(HEART_GROWTH[finding.severity] * visibility, 0.6)
                heart = enlarged_heart(heart, growth)
    return heart


def visible_fields(
    anatomy: FrontalAnatomy, findings: tuple[Finding, ...], size: int, visibility: float
) -> dict[str, np.ndarray]:
    """The true anatomy of the film ``draw_frontal`` renders, boolean ``[size, size]`` each:
    ``right`` and ``left`` lung fields where the heart does not hide them, and the ``heart``."""
    scene = render_frontal(anatomy, size, drawn_heart(anatomy, findings, visibility))
    heart = scene.region("heart") > 0
    lungs = {side: (scene.region(side) > 0.5) & ~heart for side in SIDES}
    return {**lungs, "heart": heart}


Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]  # profile in [0, 1] at points (p, v)


def _lesion_profile(
    u: np.ndarray,
    v: np.ndarray,
    lung: np.ndarray,
    anatomy: FrontalAnatomy,
    finding: Finding,
    visibility: float,
) -> np.ndarray:
    """Shape ``[H, W]`` in [0, 1] of a lung finding, limited to its lung.

    ``u``, ``v`` are the pixels' body coordinates and ``lung`` the soft mask of the finding's lung.
    """
    rng = np.random.default_rng(finding.seed)
    extent = min(1.0, visibility) ** 0.5
    if finding.kind == "effusion":
        shape = _effusion_shape(anatomy, finding, extent, rng)
    elif finding.kind == "opacity":
        shape = _opacity_shape(anatomy, finding, extent, rng)
    else:
        shape = _nodule_shape(anatomy, finding, extent, rng)
    sign = np.float32(IMAGE_SIGN[finding.side])

    def pixels(u: np.ndarray, v: np.ndarray, lung: np.ndarray) -> tuple[np.ndarray]:
        """The lesion's profile on one strip, in lateral coordinates of its lung."""
        return (shape(sign * u, v) * lung,)

    return in_strips(pixels, u, v, lung)[0]


def _zone_point(
    anatomy: FrontalAnatomy, finding: Finding, rng: np.random.Generator
) -> tuple[float, float]:
    """A random point (p, v) inside the finding's lung zone (thirds of the lung's height)."""
    lung = anatomy.lungs[finding.side]
    top = lung.center_v - lung.radius_v
    height = lung.dome_level - lung.dome_height - top
    third = ZONE_THIRD[finding.zone]
    v = top + height * (third + rng.uniform(0.3, 0.8)) / 3.0
    medial, lateral = lung_span(lung, v)
    # behind the heart the left lower lobe is hidden: keep such lesions lateral
    low, high = (0.5, 0.8) if (finding.side, third) == ("left", 2) else (0.3, 0.7)
    return medial + rng.uniform(low, high) * (lateral - medial), v


def _nodule_shape(
    anatomy: FrontalAnatomy, finding: Finding, extent: float, rng: np.random.Generator
) -> Shape:
    """A round density of the finding's diameter."""
    center = _zone_point(anatomy, finding, rng)
    radius = finding.size_cm / 2.0 * CM * extent
    return lambda p, v: bump_profile(ellipse_radius(p, v, center, (radius, radius)), 1.5)


def _opacity_shape(
    anatomy: FrontalAnatomy, finding: Finding, extent: float, rng: np.random.Generator
) -> Shape:
    """Patchy consolidation: a few overlapping blobs inside an ellipse."""
    center = _zone_point(anatomy, finding, rng)
    radii = (rng.uniform(0.14, 0.22) * extent, rng.uniform(0.12, 0.18) * extent)
    angle = rng.uniform(-0.6, 0.6)
    blobs = []
    for _ in range(8):
        offset = rng.uniform(-0.6, 0.6, size=2)
        blob_center = (center[0] + offset[0] * radii[0], center[1] + offset[1] * radii[1])
        blob_radii = (radii[0] * rng.uniform(0.3, 0.5), radii[1] * rng.uniform(0.3, 0.5))
        blobs.append((rng.uniform(0.5, 1.0), blob_center, blob_radii))

    def shape(p: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Consolidation profile at points (p, v)."""
        # ill-defined margins, and a haze joining denser patches
        envelope = smoothstep((1.0 - ellipse_radius(p, v, center, radii, angle)) / 0.6)
        patches = np.zeros_like(p)
        for weight, blob_center, blob_radii in blobs:
            patches += weight * bump_profile(ellipse_radius(p, v, blob_center, blob_radii), 1.0)
        return envelope * (0.35 + 0.65 * (1.0 - np.exp(-2.0 * patches)))

    return shape


def _effusion_shape(
    anatomy: FrontalAnatomy, finding: Finding, extent: float, rng: np.random.Generator
) -> Shape:
    """Basal fluid with a meniscus rising towards the lateral chest wall."""
    lung = anatomy.lungs[finding.side]
    height = (0.2 if finding.severity == "small" else 0.3) * rng.uniform(0.85, 1.15) * extent
    angle_p, angle_v = costophrenic_angle(lung)
    medial = lung.center_p - 0.3 * lung.radius_p

    def shape(p: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Fluid profile at points (p, v)."""
        across = np.clip((p - np.float32(medial)) / np.float32(angle_p - medial), 0.0, 1.0)
        meniscus = angle_v - height * (0.3 + 0.7 * across * across)
        # the fluid gathers laterally; the cardiophrenic angle stays free
        return smoothstep((v - meniscus) / 0.05) * smoothstep((across - 0.15) / 0.3)

    return shape
