"""``chestclip predict``: P(diseased) per head for new X-ray files (PNG, JPEG, DICOM), the decision
at the validation-chosen threshold, the top ROI zones of a heat map, an overlay PNG and, when the
run has a training index, the nearest training reports as drafts.

Heads that read report text are only used when the text they were trained on is available: with
``--indication`` the indication-only heads run; heads trained on findings never see a new
image's (unwritten) findings, so they are not offered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from chestclip.data.readers import ImageReadError, read_xray_for_model
from chestclip.errors import ChestClipError
from chestclip.explain.overlay import overlay_caption, save_overlay
from chestclip.explain.registry import explain
from chestclip.explain.roi import top_zones, zone_masses
from chestclip.explain.stage import Explainer, as_pixels, default_method
from chestclip.retrieval.index import EmbeddingIndex, nearest_reports
from chestclip.retrieval.stage import index_path
from chestclip.training.pretrain import read_training_data
from chestclip.training.probe import HEADS_DIR


@dataclass
class Prediction:
    """One file's result; ``error`` is set (and nothing else) when the file could not be read."""

    file: str
    error: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float | None] = field(default_factory=dict)
    decisions: dict[str, str | None] = field(default_factory=dict)
    top_zones: list[tuple[str, float]] = field(default_factory=list)
    overlay: str | None = None
    drafts: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {}) or k == "error"}


def validation_thresholds(run: Path) -> dict[str, float]:
    """Each head's decision threshold, chosen on validation data by ``chestclip evaluate``."""
    path = run / "eval/metrics.json"
    if not path.is_file():
        return {}
    heads = json.loads(path.read_text())["heads"]
    return {name: result["threshold"]["value"] for name, result in heads.items()}


def usable_heads(run: Path, indication: str | None) -> list[str]:
    """Image heads always; text-reading heads only when trained on the indication alone and an
    indication is given."""
    names = []
    for path in sorted((run / HEADS_DIR).glob("*/head.json")):
        info = json.loads(path.read_text())
        fields = info["text_fields"]
        if "image" in info["inputs"] and (
            fields is None or (indication and fields == ["indication"])
        ):
            names.append(info["name"])
    if not names:
        raise ChestClipError(
            f"{run}: no image-reading head in {HEADS_DIR}/; run `chestclip probe` first"
        )
    return names


def predict_files(
    run: str | Path,
    files: Sequence[str | Path],
    indication: str | None = None,
    cam_dir: str | Path | None = None,
    method: str | None = None,
    drafts: int = 3,
) -> Iterator[Prediction]:
    """Predict every file in turn; an unreadable file yields a Prediction with ``error``."""
    run = Path(run)
    names = usable_heads(run, indication)
    explainers = Explainer.load_heads(run, names)
    first = explainers[names[0]]
    model, prepared = first.model, read_training_data(run)
    thresholds = validation_thresholds(run)
    text = first.text_embedding(indication, prepared["clean"]) if indication else None
    # the map shown: the multimodal head's when it runs (the paper's), else the image head's
    explained = next((name for name, e in explainers.items() if e.needs_text), names[0])
    method = method or default_method(model)
    index = (
        EmbeddingIndex.load(index_path(run, "train"))
        if (index_path(run, "train") / "index.json").is_file()
        else None
    )
    for file in files:
        try:
            image = read_xray_for_model(file, model.config.image_size, prepared["resize"])
        except ImageReadError as err:
            yield Prediction(str(file), error=str(err))
            continue
        pixels = as_pixels(image)
        result = Prediction(str(file))
        for name, explainer in explainers.items():
            embedding = text if explainer.needs_text else None
            probability = explainer.probability(pixels, embedding)
            threshold = thresholds.get(name)
            result.probabilities[name] = probability
            result.thresholds[name] = threshold
            result.decisions[name] = (
                None
                if threshold is None
                else ("diseased" if probability >= threshold else "normal")
            )
        explainer = explainers[explained]
        heatmap = explain(
            model, pixels, explainer.score(text if explainer.needs_text else None), method
        )
        result.top_zones = top_zones(zone_masses(heatmap)) if heatmap.max() > 0 else []
        if cam_dir is not None:
            path = Path(cam_dir) / f"{Path(file).name}.{method}.png"
            caption = overlay_caption(
                result.probabilities[explained], "diseased", f"{method} ({explained} head)"
            )
            save_overlay(path, image, heatmap, caption)
            result.overlay = str(path)
        if index is not None and drafts:
            with torch.no_grad():
                embedding = model.encode_image(pixels)[0].numpy()
            result.drafts = nearest_reports(index, embedding, drafts).to_dict("records")
        yield result
