"""Is a heat map faithful to the model, and does it point at the lesion?

- Deletion/insertion curves (Petsiuk et al. 2018, RISE): grid cells are removed from the image
  (replaced by a blurred or mean-filled copy) or revealed on that copy, most salient first, and
  the target-class probability is recorded after each step. A faithful map makes the deletion
  curve fall fast (small area) and the insertion curve rise fast (large area), compared with the
  same curves for a random cell order.
- Localisation against a lesion mask: the pointing game, the share of the map's energy inside
  the lesion and the IoU of the top-k % region, with the lesion's area fraction as the chance
  level.
- Model-randomisation sanity check (Adebayo et al. 2018), cascading: the head, then the
  projection, then the encoder's blocks from the top down are re-initialised one after the other,
  and at every step the maps should differ from the trained model's (rank correlation well below
  1) — a method whose maps survive the randomisation explains the image, not the model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.integrate import trapezoid
from scipy.stats import spearmanr
from torch import Tensor, nn

from chestclip.explain.base import ScoreFunction, encoder_blocks
from chestclip.models import ChestCLIP

CNN_GRID = (8, 8)
BASELINES = ("blur", "mean")


@dataclass(frozen=True)
class Curve:
    """Scores [S + 1] after perturbing ``fractions`` [S + 1] (0 … 1) of the cells."""

    fractions: np.ndarray
    scores: np.ndarray

    @property
    def auc(self) -> float:
        """Area under the curve (trapezoid rule, x in [0, 1])."""
        return float(trapezoid(self.scores, self.fractions))


@dataclass(frozen=True)
class Faithfulness:
    """Deletion and insertion curves in saliency order and in random order (the baseline)."""

    deletion: Curve
    insertion: Curve
    random_deletion: Curve
    random_insertion: Curve


def default_grid(model: ChestCLIP) -> tuple[int, int]:
    """The cells to perturb: the ViT's token grid, or ``CNN_GRID`` for CNNs."""
    return model.image_encoder.token_grid or CNN_GRID


def cell_index(size: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """Row-major cell number of every pixel ``[H, W]`` for ``grid`` cells (edges rounded)."""
    (height, width), (rows, cols) = size, grid
    if not (0 < rows <= height and 0 < cols <= width):
        raise ValueError(f"a {rows}x{cols} grid does not fit a {height}x{width} image")
    row = np.searchsorted(np.linspace(0, height, rows + 1).round()[1:], np.arange(height), "right")
    col = np.searchsorted(np.linspace(0, width, cols + 1).round()[1:], np.arange(width), "right")
    return row[:, None] * cols + col[None, :]


def saliency_order(
    heatmap: np.ndarray, grid: tuple[int, int], seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Cell numbers by decreasing mean heat, tied cells in a random order (``seed``).

    A fixed tie-break (row-major) would delete the cells of a flat stretch — the zeros of a
    ReLU'd map, or all of a flat map — top to bottom, and that order, not the map, would shape
    the curve.
    """
    cells = cell_index(heatmap.shape, grid).ravel()
    sums = np.bincount(cells, weights=np.asarray(heatmap, dtype=np.float64).ravel())
    means = sums / np.bincount(cells)
    tie_break = np.random.default_rng(seed).permutation(len(means))
    return np.lexsort((tie_break, -means))  # by -means, then by the random key


def random_order(grid: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random permutation of the cells."""
    return rng.permutation(grid[0] * grid[1])


def perturbation_reference(pixels: Tensor, baseline: str, grid: tuple[int, int]) -> Tensor:
    """The image with its information removed ``[1, 1, H, W]``: Gaussian-blurred (sigma half a
    cell, so a cell's detail is gone) or filled with the image's mean."""
    if baseline == "mean":
        return torch.full_like(pixels, float(pixels.mean()))
    if baseline != "blur":
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    sigma = 0.5 * min(pixels.shape[-2] / grid[0], pixels.shape[-1] / grid[1])
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=pixels.dtype, device=pixels.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(pixels, (radius, radius, radius, radius), mode="replicate")
    blurred = F.conv2d(padded, kernel.view(1, 1, 1, -1))  # rows, then columns
    return F.conv2d(blurred, kernel.view(1, 1, -1, 1))


@torch.no_grad()
def perturbation_curve(
    pixels: Tensor,
    order: np.ndarray,
    score_fn: ScoreFunction,
    grid: tuple[int, int],
    mode: str,
    baseline: str = "blur",
    steps: int | None = None,
    batch_size: int = 32,
) -> Curve:
    """Deletion (``mode="deletion"``: cells of ``pixels`` [1, 1, H, W] replaced by the reference,
    ``order[0]`` first) or insertion (cells of the reference replaced by ``pixels``). ``steps``
    evenly spaced evaluation points (default: one per cell); ``score_fn`` should return the
    target-class probability. ``pixels`` must be on the device ``score_fn``'s model is on."""
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    cells = grid[0] * grid[1]
    if sorted(order.tolist()) != list(range(cells)):
        raise ValueError(f"order must be a permutation of the {cells} cells")
    reference = perturbation_reference(pixels, baseline, grid)
    start, end = (pixels, reference) if mode == "deletion" else (reference, pixels)
    rank = np.empty(cells, dtype=np.int64)
    rank[order] = np.arange(cells)
    pixel_rank = torch.from_numpy(rank[cell_index(tuple(pixels.shape[-2:]), grid)])
    pixel_rank = pixel_rank.to(pixels.device)  # [H, W]: when each pixel's cell is perturbed
    counts = np.unique(np.linspace(0, cells, (steps or cells) + 1).round().astype(int))
    scores = []
    for first in range(0, len(counts), batch_size):
        chunk = torch.as_tensor(counts[first : first + batch_size], device=pixels.device)
        changed = pixel_rank[None] < chunk[:, None, None]  # [B, H, W]
        images = torch.where(changed[:, None], end, start)  # [B, 1, H, W]
        scores.append(score_fn(images).float().cpu())
    return Curve(counts / cells, torch.cat(scores).numpy())


def faithfulness(
    pixels: Tensor,
    heatmap: np.ndarray,
    score_fn: ScoreFunction,
    grid: tuple[int, int],
    baseline: str = "blur",
    seed: int = 0,
    repeats: int = 1,
    steps: int | None = None,
) -> Faithfulness:
    """Deletion and insertion curves of ``heatmap`` [H, W] for ``pixels`` [1, 1, H, W], and the
    same curves for random cell orders (``repeats`` orders from ``seed``, scores averaged).
    The map's tied cells are ordered at random too (same ``seed``)."""
    rng = np.random.default_rng(seed)
    order = saliency_order(heatmap, grid, rng)
    randoms = [random_order(grid, rng) for _ in range(repeats)]

    def curve(mode: str, cell_order: np.ndarray) -> Curve:
        return perturbation_curve(pixels, cell_order, score_fn, grid, mode, baseline, steps)

    def mean_curve(mode: str) -> Curve:
        curves = [curve(mode, random) for random in randoms]
        return Curve(curves[0].fractions, np.mean([c.scores for c in curves], axis=0))

    return Faithfulness(
        curve("deletion", order),
        curve("insertion", order),
        mean_curve("deletion"),
        mean_curve("insertion"),
    )


def _check_pair(heatmap: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    heatmap, mask = np.asarray(heatmap), np.asarray(mask, dtype=bool)
    if heatmap.shape != mask.shape:
        raise ValueError(f"heat map {heatmap.shape} and lesion mask {mask.shape} differ in shape")
    if not mask.any():
        raise ValueError("the lesion mask is empty")
    return heatmap, mask


def pointing_hit(heatmap: np.ndarray, lesion_mask: np.ndarray) -> bool:
    """Pointing game: whether the heat map's maximum lies in the lesion. With tied maxima, a hit
    when ANY of them lies inside (a flat map therefore always hits: check it is not flat)."""
    heatmap, mask = _check_pair(heatmap, lesion_mask)
    return bool(mask[heatmap == heatmap.max()].any())


def energy_in_lesion(heatmap: np.ndarray, lesion_mask: np.ndarray) -> float:
    """Energy-based pointing game (Wang et al. 2020, Score-CAM): the share of the heat map's mass
    inside the lesion. Continuous, so far less noisy than the pointing game on small lesions; a
    uniform map scores the lesion's area fraction (chance), an all-zero map (pointing nowhere) 0."""
    heatmap, mask = _check_pair(heatmap, lesion_mask)
    total = float(heatmap.sum(dtype=np.float64))
    return float(heatmap[mask].sum(dtype=np.float64) / total) if total > 0 else 0.0


def topk_iou(heatmap: np.ndarray, lesion_mask: np.ndarray, k: float = 0.1) -> float:
    """IoU of the lesion with the top-``k`` region: pixels at or above the heat map's
    ``1 - k`` quantile (ties at the threshold included, so a flat map selects everything)."""
    if not 0 < k <= 1:
        raise ValueError(f"k must lie in (0, 1], got {k}")
    heatmap, mask = _check_pair(heatmap, lesion_mask)
    top = heatmap >= np.quantile(heatmap, 1.0 - k, method="higher")
    return float((top & mask).sum() / (top | mask).sum())


def area_fraction(lesion_mask: np.ndarray) -> float:
    """Share of the image the lesion covers: the chance hit rate of the pointing game."""
    return float(np.asarray(lesion_mask, dtype=bool).mean())


def rank_correlations(
    maps_trained: Sequence[np.ndarray], maps_randomised: Sequence[np.ndarray]
) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (flattened): float [N], NaN for a pair
    with a flat map (no rank order)."""
    if len(maps_trained) != len(maps_randomised):
        raise ValueError(f"{len(maps_trained)} trained maps but {len(maps_randomised)} randomised")
    correlations = []
    for trained, randomised in zip(maps_trained, maps_randomised, strict=True):
        trained, randomised = np.ravel(trained), np.ravel(randomised)
        if trained.shape != randomised.shape:
            raise ValueError(f"paired maps differ in size: {trained.size} vs {randomised.size}")
        flat = np.ptp(trained) == 0 or np.ptp(randomised) == 0
        correlations.append(math.nan if flat else spearmanr(trained, randomised)[0])
    return np.asarray(correlations, dtype=float)


def randomisation_check(
    maps_trained: Sequence[np.ndarray], maps_randomised: Sequence[np.ndarray]
) -> float:
    """Mean Spearman rank correlation between paired maps (flattened). Pairs with a flat map
    have no rank order and are skipped; NaN when no pair is left."""
    correlations = rank_correlations(maps_trained, maps_randomised)
    correlations = correlations[~np.isnan(correlations)]
    return float(correlations.mean()) if len(correlations) else math.nan


@torch.no_grad()
def _reinitialise(module: nn.Module, generator: torch.Generator) -> None:
    """Weights ~ N(0, 1/fan_in), biases 0, normalisation scales 1 (drawn on the CPU)."""
    for name, parameter in module.named_parameters():
        if parameter.ndim >= 2:
            fan_in = parameter[0].numel()
            values = torch.randn(parameter.shape, generator=generator) / math.sqrt(fan_in)
            parameter.copy_(values.to(parameter.device, parameter.dtype))
        else:
            parameter.fill_(1.0 if name.endswith("weight") else 0.0)


@dataclass(frozen=True)
class RandomisationStep:
    """One step of the cascade: what is re-initialised so far, and the copies."""

    name: str  # "head", "projection", or "block k/n" (k = 1 the first block)
    blocks: int  # encoder blocks re-initialised so far, from the top
    model: ChestCLIP
    head: nn.Module


def cascading_randomisation(
    model: ChestCLIP, head: nn.Module, seed: int = 0
) -> Iterator[RandomisationStep]:
    """Adebayo et al. (2018)'s cascading randomisation, from the top down: the head, then the
    image projection (models that have one), then the encoder's blocks (ViT layers or CNN
    stages), the last first, each step keeping the earlier ones re-initialised.

    Yields one copy, re-initialised a step further each time: use each step before asking for
    the next. The originals are left untouched; draws are seeded.
    """
    model_copy, head_copy = copy.deepcopy(model), copy.deepcopy(head)
    generator = torch.Generator().manual_seed(seed)
    _reinitialise(head_copy, generator)
    yield RandomisationStep("head", 0, model_copy, head_copy)
    projection = getattr(model_copy, "image_projection", None)
    if projection is not None:
        _reinitialise(projection, generator)
        yield RandomisationStep("projection", 0, model_copy, head_copy)
    blocks = list(encoder_blocks(model_copy.image_encoder))
    for done, block in enumerate(reversed(blocks), start=1):
        _reinitialise(block, generator)
        name = f"block {len(blocks) - done + 1}/{len(blocks)}"
        yield RandomisationStep(name, done, model_copy, head_copy)


def randomised_copy(
    model: ChestCLIP, head: nn.Module, n_layers: int = 1, seed: int = 0
) -> tuple[ChestCLIP, nn.Module]:
    """Copies of ``model`` and ``head`` at the cascade's step where the head, the image
    projection and the last ``n_layers`` blocks are re-initialised. The originals are left
    untouched."""
    blocks = len(encoder_blocks(model.image_encoder))
    if not 0 <= n_layers <= blocks:
        raise ValueError(f"n_layers must lie in [0, {blocks}] for this encoder, got {n_layers}")
    has_projection = getattr(model, "image_projection", None) is not None
    cascade = cascading_randomisation(model, head, seed)
    step = next(cascade)
    while step.blocks < n_layers or (step.name == "head" and has_projection):
        step = next(cascade)  # the cascade stops here: later steps would randomise further
    return step.model, step.head
