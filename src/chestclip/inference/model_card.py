"""``RUN/MODEL_CARD.md``: what the model is, what it was trained and tested on, how well it did
(with CIs), and what it must not be used for — written from the run's own files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from chestclip.errors import ChestClipError
from chestclip.evaluation.metrics import format_with_ci
from chestclip.utils.io import atomic_write_text
from chestclip.utils.run_layout import RunLayout

INTENDED_USE = """\
Research on multimodal chest X-ray classification (normal vs diseased), its explanations and its
failure modes. **Not a medical device**: not for diagnosis, triage or any clinical decision, and
not validated on any population, scanner or protocol beyond the data listed above."""

LIMITATIONS = """\
- Labels are report-derived (MeSH/Problems "normal" or not), not image-adjudicated ground truth.
- Text-using heads that read findings or impression see the radiologist's conclusion: their
  scores measure reading the report, not the image (see the warnings).
- Thresholds were chosen on the validation split; they do not transfer to another prevalence.
- Heat maps show what drove the score of this model, not where disease is; check the measured
  faithfulness (pointing game, deletion/insertion) before reading them clinically.
- A model trained on phantoms (`chestclip demo`) says nothing about real radiographs."""


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def model_card_facts(run: str | Path) -> dict[str, Any]:
    """The card's facts as data, from RUN/config.yaml, RUN/clip/data.json and
    RUN/eval/metrics.json (a missing file leaves its part empty): the model, its training data
    and splits, each head's test results with CIs and validation-chosen threshold, the warnings,
    intended use and limitations."""
    layout = RunLayout(run)
    metrics = _read_json(layout.metrics)
    config = yaml.safe_load(layout.config.read_text()) if layout.config.is_file() else {}
    data = _read_json(layout.training_data)
    model = config.get("model", {})
    evaluated = metrics.get("data", {})
    heads = {
        name: {
            "features": r["features"],
            "text_fields": r["text_fields"],
            "threshold": r["threshold"]["value"],
            "roc_auc_image": r["levels"]["image"]["metrics"]["roc_auc"],
            "roc_auc_study": r["levels"]["study"]["metrics"]["roc_auc"],
            "sensitivity": r["levels"]["image"]["metrics"]["sensitivity"],
            "specificity": r["levels"]["image"]["metrics"]["specificity"],
        }
        for name, r in metrics.get("heads", {}).items()
    }
    return {
        "run": layout.root.name,
        "chestclip_version": metrics.get("chestclip_version"),
        "created": metrics.get("created"),
        "model": {
            key: model.get(key)
            for key in ("image_encoder", "text_encoder", "embed_dim", "temperature")
        },
        "data": {
            "source": evaluated.get("source"),
            "layout": evaluated.get("layout"),
            "text_fields": data.get("text_fields", []),
            "clean": data.get("clean"),
            "image_size": data.get("image_size"),
            "resize": data.get("resize"),
            "splits": evaluated.get("splits", {}),
        },
        "heads": heads,
        "warnings": metrics.get("warnings", []),
        "intended_use": INTENDED_USE,
        "limitations": LIMITATIONS,
    }


def write_model_card(run: str | Path) -> Path:
    """Render :func:`model_card_facts` as RUN/MODEL_CARD.md (needs ``chestclip evaluate``)."""
    layout = RunLayout(run)
    if not layout.metrics.is_file():
        raise ChestClipError(f"{layout.metrics}: missing; run `chestclip evaluate` first")
    facts = model_card_facts(run)
    model, data = facts["model"], facts["data"]
    splits = "\n".join(
        f"| {name} | {c['patients']} | {c['images']} | {c['normal']} | {c['diseased']} |"
        for name, c in data["splits"].items()
    )
    rows = "\n".join(
        f"| {name} | {h['features']} | {', '.join(h['text_fields'] or []) or '—'} | "
        f"{format_with_ci(h['roc_auc_image'])} | {format_with_ci(h['roc_auc_study'])} | "
        f"{format_with_ci(h['sensitivity'])} | {format_with_ci(h['specificity'])} | "
        f"{h['threshold']:.3f} |"
        for name, h in facts["heads"].items()
    )
    warnings = "\n".join(f"- {w}" for w in facts["warnings"]) or "- none"
    card = f"""# Model card: chestclip run `{layout.root.name}`

## Model
CLIP with image encoder `{model.get("image_encoder")}` and text encoder `{model.get("text_encoder")}`,
{model.get("embed_dim")}-d shared embedding, temperature {model.get("temperature")}; MLP heads on
the frozen features. Written by chestclip {facts["chestclip_version"]} on {facts["created"]}.

## Data and splits
Source `{data["source"]}` ({data["layout"]} layout); text fields
{", ".join(data["text_fields"]) or "?"} cleaned `{data["clean"] or "?"}`, images
{data["image_size"] or "?"} px ({data["resize"] or "?"}). Split by patient, stratified by label.

| split | patients | images | normal | diseased |
| --- | --- | --- | --- | --- |
{splits}

## Test results
95 % CIs by bootstrap over patients; thresholds chosen on the validation split.

| head | features | text fields | ROC-AUC per image | ROC-AUC per study | sensitivity | specificity | threshold |
| --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

## Warnings
{warnings}

## Intended use
{INTENDED_USE}

## Limitations
{LIMITATIONS}
"""
    atomic_write_text(layout.model_card, card)
    return layout.model_card
