"""``chestclip explain``: heat maps for one image or a whole split, ROI analysis, and measured
faithfulness (deletion/insertion vs random order, pointing game and IoU on known lesions,
cascading randomisation sanity check).

Batch outputs in ``OUT`` (default ``RUN/explain``): ``gallery.png`` (the most confident
true/false positives/negatives), ``roi.csv`` (per image and method; ``roi_val.csv`` for the
validation images that chose the default method), ``faithfulness.json`` and
``randomisation.png``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from chestclip.data import PreparedData
from chestclip.data.readers import read_xray_for_model
from chestclip.data.text import section_text
from chestclip.errors import ChestClipError
from chestclip.evaluation.evaluate import validation_thresholds
from chestclip.evaluation.features import encode_images, encode_texts
from chestclip.explain.anatomy import image_zones
from chestclip.explain.base import head_score
from chestclip.explain.lexicon import agreement, mentioned_zones
from chestclip.explain.measure import (
    SplitMaps,
    as_pixels,
    measure_split,
    randomisation_cascade,
)
from chestclip.explain.overlay import (
    OverlayPanel,
    overlay_caption,
    plot_randomisation_cascade,
    save_gallery,
    save_overlay,
)
from chestclip.explain.registry import explain, methods_for
from chestclip.explain.roi import top_zones, zone_masses
from chestclip.explain.summary import choose_default_method, summarise, summarise_cascade
from chestclip.inference.trust import TrustPolicy, Verdict
from chestclip.models import ChestCLIP, load_clip
from chestclip.models.heads import HEAD_INPUTS
from chestclip.training.finetune import FINETUNED, ImageClassifier, load_image_baseline
from chestclip.training.pretrain import read_training_data
from chestclip.training.probe import load_head
from chestclip.utils.device import model_device, resolve_device
from chestclip.utils.io import atomic_path, atomic_write_json
from chestclip.utils.run_layout import HEAD_FILE, RunLayout

# The default per encoder family, measured on phantoms (README, Explanations): the only faithful
# ViT method on a fine-tuned tiny ViT; the only CNN method.
DEFAULT_METHODS = {"vit": "attention-gradcam", "cnn": "cnn-gradcam"}
GALLERY_PER_CELL = 2
CHOOSING_SPLIT = "val"  # the default method is chosen here; the reported split is read after
RANDOMISATION_IMAGES = 50  # enough for a bootstrap interval on the rank correlation


def default_method(model: ChestCLIP | ImageClassifier, run: str | Path | None = None) -> str:
    """The heat-map method used when none is named: the one `chestclip explain` chose on this
    run's validation images (``faithfulness.json``) when it applies to ``model``, else the
    encoder kind's fixed default (a run not yet explained in batch)."""
    summary = RunLayout(run).faithfulness if run is not None else None
    if summary is not None and summary.is_file():
        measured = json.loads(summary.read_text()).get("default_method")
        if measured in methods_for(model):
            return measured
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
    def load(
        cls, run: str | Path, head: str = "multimodal", device: str | torch.device | None = None
    ) -> Explainer:
        return cls.load_heads(run, [head], device)[head]

    @classmethod
    def load_heads(
        cls, run: str | Path, heads: Sequence[str], device: str | torch.device | None = None
    ) -> dict[str, Explainer]:
        """One explainer per head, all sharing one copy of the run's CLIP on ``device`` (default:
        CUDA when available); a stale head (trained on other CLIP weights) is refused.
        ``image-finetuned`` is the fine-tuned image baseline (``chestclip baseline image``): its
        own encoder, with its linear layer as the head."""
        layout, device = RunLayout(run), resolve_device(device)
        model, tokenizer = load_clip(run, device) if set(heads) - {FINETUNED} else (None, None)
        explainers = {}
        for head in heads:
            if head == FINETUNED:
                classifier, _ = load_image_baseline(run)
                inputs = list(HEAD_INPUTS["image"])
                info = {"name": FINETUNED, "kind": "image", "inputs": inputs, "text_fields": None}
                explainers[head] = cls(classifier.to(device), None, classifier.classifier, info)
                continue
            directory = layout.head(head)
            if not (directory / HEAD_FILE).is_file():
                raise ChestClipError(
                    f"{run}: no head {head!r} in {layout.heads.name}/; run `chestclip probe` first"
                )
            loaded, info = load_head(directory)
            layout.check_head(directory, info)
            if "image" not in info["inputs"]:
                raise ChestClipError(
                    f"head {head!r} reads no image: choose a multimodal or image head"
                )
            explainers[head] = cls(model, tokenizer, loaded.to(device), info)
        return explainers

    @property
    def needs_text(self) -> bool:
        return "text" in self.info["inputs"]

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def text_embedding(self, text: str, clean_mode: str) -> torch.Tensor:
        cleaned = section_text(text, clean_mode)  # as training built its texts
        embedding = encode_texts(self.model, self.tokenizer, [cleaned])[0]
        return torch.from_numpy(embedding).to(self.device)

    def score(self, text_embedding: torch.Tensor | None, probability: bool = False):
        return head_score(self.model, self.head, self.info["kind"], text_embedding, 1, probability)

    def probability(self, pixels: torch.Tensor, text_embedding: torch.Tensor | None) -> float:
        with torch.no_grad():
            return float(self.score(text_embedding, probability=True)(pixels)[0])


def explain_image(
    run: str | Path,
    image_file: str | Path,
    out: str | Path,
    text: str | None = None,
    method: str | None = None,
    head: str | None = None,
    device: str | torch.device | None = None,
    allow_ood: bool = False,
) -> dict[str, Any]:
    """Heat map, overlay PNG and ROI shares for one image file (PNG, JPEG or DICOM, read as
    ``chestclip predict`` reads it); the model runs on ``device`` (default: CUDA when there). An
    image the run's trust policy flags (``chestclip.inference.trust``) gets none of them unless
    ``allow_ood``, and a lateral film no zones."""
    run, out = Path(run), Path(out)
    explainer = Explainer.load(run, head or ("multimodal" if text else "image"), device)
    if explainer.needs_text and not text:
        raise ChestClipError(
            "the multimodal head needs --text (e.g. the indication); or use --head image"
        )
    prepared = read_training_data(run)
    size = explainer.model.image_encoder.image_size
    image = read_xray_for_model(image_file, size, prepared["resize"])
    pixels = as_pixels(image, explainer.device)
    method = method or default_method(explainer.model, run)
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
        clip = (
            explainer.model
            if isinstance(explainer.model, ChestCLIP)
            else load_clip(run, explainer.device)[0]
        )
        embedding = encode_images(clip, image[None])[0]
    return policy.check(image, embedding, allow_ood)


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


def gallery_threshold(run: str | Path, head: str) -> tuple[float, str]:
    """The threshold the gallery sorts TP/FP/TN/FN at, and where it comes from: the head's
    threshold chosen on validation by ``chestclip evaluate`` (``eval/metrics.json``), so the
    gallery agrees with the confusion matrix; 0.5 before the run is evaluated, and it says so."""
    thresholds = validation_thresholds(run)
    if head in thresholds:
        return thresholds[head], "validation threshold, eval/metrics.json"
    return 0.5, "fixed 0.5: run `chestclip evaluate` for the validation threshold"


def explain_split(
    run: str | Path,
    data_dir: str | Path,
    split: str = "test",
    limit: int | None = None,
    methods: Sequence[str] | None = None,
    head: str = "multimodal",
    out: str | Path | None = None,
    masks_dir: str | Path | None = None,
    threshold: float | None = None,
    seed: int = 0,
    randomisation_images: int = RANDOMISATION_IMAGES,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Explain the frontal images of ``split`` with every applicable method (or ``methods``),
    on ``device`` (default: CUDA when available).

    The default method is chosen on the validation split — its first ``limit`` frontal images,
    explained and measured the same way — before ``split`` is read, which then only reports
    (with ``split="val"`` the same images choose and report, and the summary says so). The
    cascading randomisation check runs on the first ``randomisation_images`` images of
    ``split``. The gallery sorts images into TP/FP/TN/FN at ``threshold``, by default the head's
    validation threshold from ``chestclip evaluate`` (see :func:`gallery_threshold`). A split
    without frontal images (views unknown) is explained on all its images, with a warning logged
    and recorded in faithfulness.json.
    """
    layout = RunLayout(run)
    run = layout.root
    out = Path(out) if out else layout.explain
    explainer = Explainer.load(run, head, device)
    data = PreparedData(data_dir)
    masks_dir = Path(masks_dir) if masks_dir else Path(data.summary["source"]) / "masks"
    methods = list(methods or methods_for(explainer.model))

    def measure(name: str) -> SplitMaps:
        return measure_split(explainer, run, data, name, limit, methods, masks_dir, seed)

    choosing = measure(CHOOSING_SPLIT)
    validation = summarise(choosing.roi, methods, seed=seed)
    best = choose_default_method(validation["methods"])
    measured = choosing if split == CHOOSING_SPLIT else measure(split)
    cascade = summarise_cascade(
        randomisation_cascade(explainer, measured, methods, randomisation_images, seed), seed
    )
    summary = summarise(measured.roi, methods, top_block_correlations(cascade), seed)
    if threshold is None:
        threshold, threshold_source = gallery_threshold(run, explainer.info["name"])
    else:
        threshold_source = "given"
    with atomic_path(out / "roi.csv") as tmp:
        measured.roi.to_csv(tmp, index=False)
    if split != CHOOSING_SPLIT:
        with atomic_path(out / f"roi_{CHOOSING_SPLIT}.csv") as tmp:
            choosing.roi.to_csv(tmp, index=False)
    # which zones the ROI shares were measured in: per-image anatomy or the template fallback
    zones = measured.roi.drop_duplicates("image_id")["zones"].value_counts().to_dict()
    fallbacks = [m.fallback for m in (choosing, measured) if m.fallback]
    views = {"views": "all", "warning": fallbacks[-1]} if fallbacks else {"views": "frontal"}
    summary = {
        "split": split,
        "head": explainer.info["name"],
        **views,
        **summary,
        "zones": zones,
        "default_method": best,
        "default_chosen_on": CHOOSING_SPLIT,
        "validation": {"images": choosing.roi["image_id"].nunique(), **validation},
        "randomisation": {
            "images": min(randomisation_images, len(measured.pixels)),
            "methods": cascade,
        },
        "gallery_threshold": {"value": threshold, "source": threshold_source},
    }
    atomic_write_json(out / "faithfulness.json", summary)
    plot_randomisation_cascade(cascade, out / "randomisation.png")
    save_gallery_of(measured, data, best, threshold, threshold_source, explainer, out)
    return summary


def top_block_correlations(cascade: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per method, the cascade's rank correlation once the head, the projection and the top
    encoder block are re-initialised (the summary table's column)."""
    return {
        method: next((s["rank_correlation"] for s in steps if s["blocks"] == 1), None)
        for method, steps in cascade.items()
    }


def save_gallery_of(
    measured: SplitMaps,
    data: PreparedData,
    method: str,
    threshold: float,
    threshold_source: str,
    explainer: Explainer,
    out: Path,
) -> None:
    """``gallery.png``: ``method``'s maps of the most confident TP/FP/TN/FN at ``threshold``."""
    per_image = measured.roi[measured.roi["method"] == method].drop_duplicates("image_id")
    chosen = gallery_rows(per_image, threshold)
    positions = {measured.table.iloc[p]["image_id"]: p for p in measured.pixels}
    panels = [
        OverlayPanel(
            np.asarray(data.array[measured.table.iloc[positions[r.image_id]]["row"]]),
            measured.maps[method][positions[r.image_id]],
            f"{r.outcome} · P={r.probability:.2f} · {r.image_id}",
            measured.zones[positions[r.image_id]],
        )
        for r in chosen.itertuples()
    ]
    title = (
        f"{explainer.info['name']} head · {method} · TP/FP/TN/FN at P ≥ {threshold:.3f} "
        f"({threshold_source})"
    )
    save_gallery(out / "gallery.png", panels, columns=4, title=title)
