"""Explaining a split image by image: every method's heat map with its localisation and
faithfulness figures (the rows of ``roi.csv``), and the cascading randomisation check on the
same maps. ``chestclip explain`` (``stage``) measures the validation split to choose its default
method and the split asked for to report it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from chestclip.data import PreparedData
from chestclip.data.dataset import fallback_note
from chestclip.data.images import fit_square
from chestclip.errors import ChestClipError
from chestclip.evaluation.features import FeatureCache
from chestclip.explain.anatomy import Zones, image_zones
from chestclip.explain.faithfulness import (
    area_fraction,
    cascading_randomisation,
    default_grid,
    energy_in_lesion,
    faithfulness,
    pointing_hit,
    rank_correlations,
    topk_iou,
)
from chestclip.explain.lexicon import agreement, mentioned_zones
from chestclip.explain.registry import explain
from chestclip.explain.roi import top_zones, zone_masses

if TYPE_CHECKING:
    from chestclip.explain.stage import Explainer

FAITHFULNESS_STEPS = 16


def as_pixels(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 [H, W] → float [1, 1, H, W] in [0, 1], on ``device``."""
    return torch.from_numpy(image.astype(np.float32) / 255.0)[None, None].to(device)


def lesion_mask(masks_dir: Path | None, image_id: str, size: int, resize: str) -> np.ndarray | None:
    """A phantom's lesion mask fitted to the prepared image exactly as its image was."""
    path = masks_dir / f"{image_id}_mask.png" if masks_dir else None
    if path is None or not path.is_file():
        return None
    return fit_square(np.asarray(Image.open(path).convert("L")), size, resize) > 127


@dataclass
class SplitMaps:
    """What explaining a split produced: ``roi`` (one row per image and method), the heat maps
    ``maps[method][position]`` [H, W] and ``pixels[position]`` [1, 1, H, W] by position in
    ``table`` (the split's images), and the studies' text embeddings [N, D] (multimodal heads)."""

    split: str
    table: pd.DataFrame
    roi: pd.DataFrame
    maps: dict[str, dict[int, np.ndarray]]
    pixels: dict[int, torch.Tensor]
    texts: np.ndarray | None
    fallback: str | None = None  # why every view was explained: the split has no frontal image
    device: torch.device | str = "cpu"  # the explained model's
    zones: dict[int, Zones] = dataclasses.field(default_factory=dict)  # by position, as maps

    def text(self, position: int) -> torch.Tensor | None:
        if self.texts is None:
            return None
        return torch.from_numpy(self.texts[position]).to(self.device)


def measure_split(
    explainer: Explainer,
    run: Path,
    data: PreparedData,
    split: str,
    limit: int | None,
    methods: Sequence[str],
    masks_dir: Path | None,
    seed: int,
) -> SplitMaps:
    """Explain the first ``limit`` frontal images of ``split`` with each of ``methods``; a split
    without frontal images (views unknown) is explained on all its images, and says so."""
    model = explainer.model
    resize = data.summary["config"]["resize"]
    table = data.split_images(split)
    texts = None
    if explainer.needs_text:
        cache = FeatureCache(run, model, explainer.tokenizer, data)
        texts = cache.texts(split, explainer.info["text_fields"])
    projection = data.view_filter("frontal", [split], "explain")
    selected = np.arange(len(table))
    if projection is not None:
        selected = np.flatnonzero((table["projection"] == projection).to_numpy())
    selected = selected[:limit] if limit else selected
    if len(selected) == 0:
        raise ChestClipError(f"{data.root}: no images in split {split!r} to explain")
    findings = table["uid"].map(data.studies.set_index("uid")["findings"])
    fallback = None if projection else fallback_note(data.root, [split], "explain")
    maps: dict[str, dict[int, np.ndarray]] = {m: {} for m in methods}
    measured = SplitMaps(split, table, pd.DataFrame(), maps, {}, texts, fallback, explainer.device)

    rows = []
    for position in tqdm(
        selected, desc=f"explain {split}", unit="image", leave=False, disable=None
    ):
        record = table.iloc[position]
        image = np.asarray(data.array[record["row"]])
        pixels = measured.pixels[position] = as_pixels(image, explainer.device)
        text_embedding = measured.text(position)
        probability = explainer.probability(pixels, text_embedding)
        mask = lesion_mask(masks_dir, record["image_id"], image.shape[0], resize)
        has_lesion = mask is not None and bool(mask.any())
        zones = mentioned_zones(findings.iloc[position])
        # zones on this film's anatomy, or the template where no plausible lungs are found
        anatomy = measured.zones[position] = image_zones(image)
        for method in methods:
            start = time.perf_counter()
            heatmap = explain(model, pixels, explainer.score(text_embedding), method)
            seconds = time.perf_counter() - start
            measured.maps[method][position] = heatmap
            flat = bool(heatmap.max() == heatmap.min())
            masses = zone_masses(heatmap, anatomy.masks)
            curves = faithfulness(
                pixels,
                heatmap,
                explainer.score(text_embedding, probability=True),
                default_grid(model),
                seed=seed,
                steps=FAITHFULNESS_STEPS,
            )
            rows.append(
                {
                    "image_id": record["image_id"],
                    "uid": record["uid"],
                    "label": int(record["label"]),
                    "probability": probability,
                    "method": method,
                    "seconds": seconds,
                    "empty_map": flat,
                    "zones": anatomy.source,
                    "top_zones": ";".join(name for name, _ in top_zones(masses)),
                    "mentioned_zones": ";".join(sorted(zones)),
                    "agreement": agreement(masses, zones)
                    if zones and heatmap.max() > 0
                    else math.nan,
                    # a flat map points nowhere: a miss, not a tie won everywhere
                    "pointing_hit": (not flat and pointing_hit(heatmap, mask))
                    if has_lesion
                    else None,
                    "energy_in_lesion": energy_in_lesion(heatmap, mask) if has_lesion else None,
                    "topk_iou": topk_iou(heatmap, mask) if has_lesion else None,
                    "lesion_area": area_fraction(mask) if has_lesion else None,
                    "deletion_auc": curves.deletion.auc,
                    "random_deletion_auc": curves.random_deletion.auc,
                    "insertion_auc": curves.insertion.auc,
                    "random_insertion_auc": curves.random_insertion.auc,
                    **{f"mass_{zone}": value for zone, value in masses.items()},
                }
            )
    measured.roi = pd.DataFrame(rows)
    return measured


def randomisation_cascade(
    explainer: Explainer, measured: SplitMaps, methods: Sequence[str], n_images: int, seed: int
) -> dict[str, list[tuple[str, int, np.ndarray]]]:
    """Per method, per step of the cascading randomisation (head, projection, then blocks from
    the top): ``(step, blocks re-initialised, rank correlation per image [n])`` between the
    trained model's maps and the randomised one's, on the first ``n_images`` explained images
    (NaN where a map is flat)."""
    result: dict[str, list[tuple[str, int, np.ndarray]]] = {m: [] for m in methods}
    for step in cascading_randomisation(explainer.model, explainer.head, seed):
        randomised = dataclasses.replace(explainer, model=step.model.eval(), head=step.head.eval())
        for method in methods:
            positions = list(measured.maps[method])[:n_images]
            maps = [
                explain(
                    step.model,
                    measured.pixels[p],
                    randomised.score(measured.text(p)),
                    method,
                )
                for p in positions
            ]
            trained = [measured.maps[method][p] for p in positions]
            result[method].append((step.name, step.blocks, rank_correlations(trained, maps)))
    return result
