"""X-ray augmentation on tensors (no torchvision): small affine jitter and exposure changes.

No horizontal flip: left and right matter in chest X-rays and in their reports.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


class XrayAugment:
    """Random rotation (±degrees), isotropic scale (1 ± scale), shift (± fraction of the side),
    brightness (± additive) and contrast (× 1 ± contrast) for one image [1, H, W] in [0, 1].

    Randomness comes from torch's generator: Lightning's ``seed_everything(workers=True)`` seeds
    each DataLoader worker, so a run is reproducible.
    """

    def __init__(
        self,
        degrees: float = 5.0,
        scale: float = 0.05,
        shift: float = 0.05,
        brightness: float = 0.1,
        contrast: float = 0.1,
    ):
        self.degrees, self.scale, self.shift = degrees, scale, shift
        self.brightness, self.contrast = brightness, contrast

    @staticmethod
    def _uniform(bound: float) -> float:
        return (torch.rand(()).item() * 2 - 1) * bound

    def __call__(self, image: Tensor) -> Tensor:  # [1, H, W] → [1, H, W]
        angle = math.radians(self._uniform(self.degrees))
        zoom = 1 + self._uniform(self.scale)
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        theta = torch.tensor(
            [[cos, -sin, self._uniform(self.shift) * 2], [sin, cos, self._uniform(self.shift) * 2]],
            dtype=image.dtype,
        )
        grid = F.affine_grid(theta[None], [1, *image.shape], align_corners=False)
        warped = F.grid_sample(image[None], grid, padding_mode="zeros", align_corners=False)[0]
        mean = warped.mean()
        adjusted = (warped - mean) * (1 + self._uniform(self.contrast)) + mean
        return (adjusted + self._uniform(self.brightness)).clamp(0, 1)


def make_augment(
    enabled: bool, degrees: float, scale: float, shift: float, brightness: float, contrast: float
) -> XrayAugment | None:
    """The training-split transform, or None when augmentation is off."""
    return XrayAugment(degrees, scale, shift, brightness, contrast) if enabled else None
