"""``chestclip explain``: heat maps for one image or a whole split, ROI analysis, and measured
faithfulness (deletion/insertion vs random order, pointing game and IoU on known lesions,
randomisation sanity check).

Batch outputs in ``OUT`` (default ``RUN/explain``): ``gallery.png`` (the most confident
true/false positives/negatives), ``roi.csv`` (per image and method), ``faithfulness.json``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from chestclip.data import PreparedData
from chestclip.data.images import fit_square, load_xray
from chestclip.data.records import FRONTAL
from chestclip.data.text import clean_text
from chestclip.errors import ChestClipError
from chestclip.evaluation.features import FeatureCache, encode_images, encode_texts
from chestclip.explain.anatomy import image_zones
from chestclip.explain.base import head_score
from chestclip.explain.faithfulness import (
    area_fraction,
    default_grid,
    energy_in_lesion,
    faithfulness,
    pointing_hit,
    randomisation_check,
    randomised_copy,
    topk_iou,
)
from chestclip.explain.lexicon import agreement, mentioned_zones
from chestclip.explain.overlay import OverlayPanel, overlay_caption, save_gallery, save_overlay
from chestclip.explain.registry import explain, methods_for
from chestclip.explain.roi import top_zones, zone_masses
from chestclip.explain.summary import summarise
from chestclip.inference.trust import TrustPolicy, Verdict
from chestclip.models import ChestCLIP, load_clip, resolve_clip_dir
from chestclip.models.heads import HEAD_INPUTS
from chestclip.training.finetune import FINETUNED, ImageClassifier, load_image_baseline
from chestclip.training.pretrain import read_training_data
from chestclip.training.probe import HEADS_DIR, load_head
from chestclip.utils.io import atomic_path, atomic_write_json

EXPLAIN_DIR = "explain"
# The default per encoder family, measured on phantoms (README, Explanations): the only faithful
# ViT method on a fine-tuned tiny ViT; the only CNN method.
DEFAULT_METHODS = {"vit": "attention-gradcam", "cnn": "cnn-gradcam"}
GALLERY_PER_CELL = 2
FAITHFULNESS_STEPS = 16


def default_method(model: ChestCLIP) -> str:
    return DEFAULT_METHODS["vit" if model.image_encoder.token_grid else "cnn"]


@dataclass
class Explainer:
    """A run's CLIP and one of its heads, ready to score and explain images (or the fine-tuned
    image baseline, which offers the same ``image_encoder``/``encode_image``)."""

    model: ChestCLIP | ImageClassifier
    tokenizer: Any
    head: torch.nn.Module
    info: dict[str, Any]

    @classmethod
    def load(cls, run: str | Path, head: str = "multimodal") -> Explainer:
        return cls.load_heads(run, [head])[head]

    @classmethod
    def load_heads(cls, run: str | Path, heads: Sequence[str]) -> dict[str, Explainer]:
        """One explainer per head, all sharing one copy of the run's CLIP. ``image-finetuned``
        is the fine-tuned image baseline (``chestclip baseline image``): its own encoder, with its
        linear layer as the head."""
        model, tokenizer = load_clip(run) if set(heads) - {FINETUNED} else (None, None)
        explainers = {}
        for head in heads:
            if head == FINETUNED:
                classifier, _ = load_image_baseline(run)
                inputs = list(HEAD_INPUTS["image"])
                info = {"name": FINETUNED, "kind": "image", "inputs": inputs, "text_fields": None}
                explainers[head] = cls(classifier, None, classifier.classifier, info)
                continue
            directory = Path(run) / HEADS_DIR / head
            if not (directory / "head.json").is_file():
                raise ChestClipError(
                    f"{run}: no head {head!r} in {HEADS_DIR}/; run `chestclip probe` first"
                )
            loaded, info = load_head(directory)
            if "image" not in info["inputs"]:
                raise ChestClipError(
                    f"head {head!r} reads no image: choose a multimodal or image head"
                )
            explainers[head] = cls(model, tokenizer, loaded, info)
        return explainers

    @property
    def needs_text(self) -> bool:
        return "text" in self.info["inputs"]

    def text_embedding(self, text: str, clean_mode: str) -> torch.Tensor:
        cleaned = clean_text(text, clean_mode)
        return torch.from_numpy(encode_texts(self.model, self.tokenizer, [cleaned])[0])

    def score(self, text_embedding: torch.Tensor | None, probability: bool = False):
        return head_score(self.model, self.head, self.info["kind"], text_embedding, 1, probability)

    def probability(self, pixels: torch.Tensor, text_embedding: torch.Tensor | None) -> float:
        with torch.no_grad():
            return float(self.score(text_embedding, probability=True)(pixels)[0])


def as_pixels(image: np.ndarray) -> torch.Tensor:
    """uint8 [H, W] → float [1, 1, H, W] in [0, 1]."""
    return torch.from_numpy(image.astype(np.float32) / 255.0)[None, None]


def explain_image(
    run: str | Path,
    image_file: str | Path,
    out: str | Path,
    text: str | None = None,
    method: str | None = None,
    head: str | None = None,
    allow_ood: bool = False,
) -> dict[str, Any]:
    """Heat map, overlay PNG and ROI shares for one image file (PNG/JPEG); an image the run's
    trust policy flags (``chestclip.inference.trust``) gets none of them unless ``allow_ood``,
    and a lateral film no zones."""
    run, out = Path(run), Path(out)
    explainer = Explainer.load(run, head or ("multimodal" if text else "image"))
    if explainer.needs_text and not text:
        raise ChestClipError(
            "the multimodal head needs --text (e.g. the indication); or use --head image"
        )
    prepared = read_training_data(run)
    image = load_xray(str(image_file), explainer.model.image_encoder.image_size, prepared["resize"])
    pixels = as_pixels(image)
    method = method or default_method(explainer.model)
    stem = Path(image_file).stem
    verdict = image_verdict(run, explainer, image, prepared, allow_ood)
    result: dict[str, Any] = {
        "image": str(image_file),
        "head": explainer.info["name"],
        "method": method,
        "probability_diseased": None,
        "trust": verdict.as_dict(),
    }
    if verdict.refused:
        atomic_write_json(out / f"{stem}_{method}.json", result)
        return result
    text_embedding = (
        explainer.text_embedding(text, prepared["clean"]) if explainer.needs_text else None
    )
    heatmap = explain(explainer.model, pixels, explainer.score(text_embedding), method)
    probability = explainer.probability(pixels, text_embedding)
    zones = image_zones(image) if verdict.frontal else None
    masses = zone_masses(heatmap, zones.masks) if zones else {}
    mentioned = mentioned_zones(text) if text and zones else set()
    save_overlay(
        out / f"{stem}_{method}.png",
        image,
        heatmap,
        overlay_caption(probability, "diseased", method),
        zones=zones,
    )
    result |= {
        "probability_diseased": probability,
        "zones": zones.source if zones else None,
        "zone_masses": masses,
        "top_zones": [name for name, _ in top_zones(masses)],
        "mentioned_zones": sorted(mentioned),
        "agreement": agreement(masses, mentioned) if mentioned else None,
    }
    atomic_write_json(out / f"{stem}_{method}.json", result)
    return result


def image_verdict(
    run: Path, explainer: Explainer, image: np.ndarray, prepared: dict[str, Any], allow_ood: bool
) -> Verdict:
    """The run's trust policy on ``image`` uint8 [S, S] for ``explainer``'s head; the OOD guard
    reads the run's CLIP embedding even when the fine-tuned baseline is explained."""
    policy = TrustPolicy.load(run, [explainer.info], prepared)
    embedding = None
    if policy.guard is not None:
        clip = explainer.model if isinstance(explainer.model, ChestCLIP) else load_clip(run)[0]
        embedding = encode_images(clip, image[None])[0]
    return policy.check(image, embedding, allow_ood)


def lesion_mask(masks_dir: Path | None, image_id: str, size: int, resize: str) -> np.ndarray | None:
    """A phantom's lesion mask fitted to the prepared image exactly as its image was."""
    path = masks_dir / f"{image_id}_mask.png" if masks_dir else None
    if path is None or not path.is_file():
        return None
    return fit_square(np.asarray(Image.open(path).convert("L")), size, resize) > 127


def gallery_rows(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The most confident true/false positives/negatives at ``threshold``."""
    predicted = table["probability"] >= threshold
    outcome = np.where(
        predicted,
        np.where(table["label"] == 1, "TP", "FP"),
        np.where(table["label"] == 0, "TN", "FN"),
    )
    table = table.assign(outcome=outcome, confidence=(table["probability"] - threshold).abs())
    picked = (
        table.sort_values("confidence", ascending=False)
        .groupby("outcome", sort=False)
        .head(GALLERY_PER_CELL)
    )
    order = {"TP": 0, "FP": 1, "TN": 2, "FN": 3}
    return picked.sort_values("outcome", key=lambda s: s.map(order))


def explain_split(
    run: str | Path,
    data_dir: str | Path,
    split: str = "test",
    limit: int | None = None,
    methods: Sequence[str] | None = None,
    head: str = "multimodal",
    out: str | Path | None = None,
    masks_dir: str | Path | None = None,
    threshold: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Explain the frontal images of ``split`` with every applicable method (or ``methods``)."""
    run = Path(run)
    out = Path(out) if out else run / EXPLAIN_DIR
    explainer = Explainer.load(run, head)
    model = explainer.model
    data = PreparedData(data_dir)
    resize = data.summary["config"]["resize"]
    masks_dir = Path(masks_dir) if masks_dir else Path(data.summary["source"]) / "masks"
    methods = list(methods or methods_for(model))
    table = data.split_images(split)
    texts = None
    if explainer.needs_text:
        weights = resolve_clip_dir(run) / "model.safetensors"
        cache = FeatureCache(run, model, explainer.tokenizer, data, weights)
        texts = cache.texts(split, explainer.info["text_fields"])
    frontal = np.flatnonzero((table["projection"] == FRONTAL).to_numpy())
    frontal = frontal[:limit] if limit else frontal
    if len(frontal) == 0:
        raise ChestClipError(f"{data.root}: no frontal images in split {split!r} to explain")
    findings = table["uid"].map(data.studies.set_index("uid")["findings"])

    rows, maps, pixels_of, zones_of = [], {m: {} for m in methods}, {}, {}
    faith = {m: [] for m in methods}
    for position in frontal:
        record = table.iloc[position]
        image = np.asarray(data.array[record["row"]])
        pixels = as_pixels(image)
        pixels_of[position] = pixels
        text_embedding = torch.from_numpy(texts[position]) if texts is not None else None
        probability = explainer.probability(pixels, text_embedding)
        mask = lesion_mask(masks_dir, record["image_id"], image.shape[0], resize)
        has_lesion = mask is not None and bool(mask.any())
        zones = mentioned_zones(findings.iloc[position])
        zones_of[position] = image_zones(image)  # frontal films only: the split was filtered
        for method in methods:
            start = time.perf_counter()
            heatmap = explain(model, pixels, explainer.score(text_embedding), method)
            seconds = time.perf_counter() - start
            maps[method][position] = heatmap
            flat = bool(heatmap.max() == heatmap.min())
            masses = zone_masses(heatmap, zones_of[position].masks)
            curves = faithfulness(
                pixels,
                heatmap,
                explainer.score(text_embedding, probability=True),
                default_grid(model),
                seed=seed,
                steps=FAITHFULNESS_STEPS,
            )
            faith[method].append(curves)
            rows.append(
                {
                    "image_id": record["image_id"],
                    "uid": record["uid"],
                    "label": int(record["label"]),
                    "probability": probability,
                    "method": method,
                    "seconds": seconds,
                    "empty_map": flat,
                    "zones": zones_of[position].source,
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
    roi = pd.DataFrame(rows)
    summary = summarise(
        roi, methods, randomisation(explainer, methods, maps, pixels_of, texts, seed), seed
    )
    with atomic_path(out / "roi.csv") as tmp:
        roi.to_csv(tmp, index=False)
    # which zones the ROI shares were measured in: per-image anatomy or the template fallback
    summary["zones"] = roi.drop_duplicates("image_id")["zones"].value_counts().to_dict()
    atomic_write_json(
        out / "faithfulness.json", {"split": split, "head": explainer.info["name"], **summary}
    )

    best = summary["default_method"]
    per_image = roi[roi["method"] == best].drop_duplicates("image_id").set_index("image_id")
    chosen = gallery_rows(per_image.reset_index(), threshold)
    positions = {table.iloc[p]["image_id"]: p for p in frontal}
    panels = [
        OverlayPanel(
            np.asarray(data.array[table.iloc[positions[r.image_id]]["row"]]),
            maps[best][positions[r.image_id]],
            f"{r.outcome} · P={r.probability:.2f} · {r.image_id}",
            zones_of[positions[r.image_id]],
        )
        for r in chosen.itertuples()
    ]
    save_gallery(
        out / "gallery.png", panels, columns=4, title=f"{explainer.info['name']} head · {best}"
    )
    return summary


def randomisation(
    explainer, methods, maps, pixels_of, texts, seed, n_images: int = 8
) -> dict[str, float]:
    """Rank correlation between the trained model's maps and those of a copy whose head and last
    encoder block are re-initialised (a faithful method's maps must change)."""
    model, head = randomised_copy(explainer.model, explainer.head, n_layers=1, seed=seed)
    shuffled = Explainer(model.eval(), explainer.tokenizer, head.eval(), explainer.info)
    result = {}
    for method in methods:
        positions = list(maps[method])[:n_images]
        randomised = []
        for position in positions:
            text = torch.from_numpy(texts[position]) if texts is not None else None
            randomised.append(explain(model, pixels_of[position], shuffled.score(text), method))
        result[method] = randomisation_check([maps[method][p] for p in positions], randomised)
    return result
