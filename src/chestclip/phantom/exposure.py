"""From projected density to an 8-bit radiograph: exposure, detector blur and quantum noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Exposure:
    """Acquisition settings of one radiograph (all resolution independent)."""

    attenuation: float  # brightness = 1 - exp(-attenuation * density)
    window_low: float  # brightness mapped to black
    window_high: float  # brightness mapped to white
    gamma: float
    blur: float  # detector blur in pixels at 512 px; it grows as sqrt(size / 512)
    noise: float  # standard deviation of the additive noise, in [0, 1] grey units


def sample_exposure(rng: np.random.Generator) -> Exposure:
    """Draw exposure, contrast and noise settings that vary as between real acquisitions."""
    return Exposure(
        attenuation=float(rng.uniform(1.3, 1.9)),
        window_low=float(rng.uniform(0.02, 0.12)),
        window_high=float(rng.uniform(0.82, 0.97)),
        gamma=float(rng.uniform(0.8, 1.25)),
        blur=float(rng.uniform(0.6, 1.4)),
        noise=float(rng.uniform(0.008, 0.025)),
    )


def expose(density: np.ndarray, exposure: Exposure, noise_rng: np.random.Generator) -> np.ndarray:
    """Turn a density map ``[H, W]`` into a uint8 radiograph ``[H, W]`` (bright = dense).

    The mapping is pixel-wise except for the blur, and never depends on image statistics, so a
    lesion changes only the pixels near it. ``noise_rng`` is used for the noise alone.
    """
    size = density.shape[0]
    brightness = 1.0 - np.exp(-np.float32(exposure.attenuation) * np.maximum(density, 0.0))
    span = np.float32(exposure.window_high - exposure.window_low)
    brightness = np.clip((brightness - np.float32(exposure.window_low)) / span, 0.0, 1.0)
    brightness = brightness ** np.float32(exposure.gamma)
    # the blur widens with the image, but less than the anatomy: large images are sharper
    sigma = exposure.blur * (size / 512.0) ** 0.5
    brightness = ndimage.gaussian_filter(brightness, sigma=sigma)
    noise = noise_rng.standard_normal(density.shape, dtype=np.float32)
    brightness = brightness + np.float32(exposure.noise) * noise
    return np.clip(np.rint(brightness * 255.0), 0, 255).astype(np.uint8)
