"""``RUN/MODEL_CARD.md``: what the model is, what it was trained and tested on, how well it did
(with CIs), and what it must not be used for — written from the run's own files."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from chestclip.errors import ChestClipError
from chestclip.evaluation.metrics import format_with_ci
from chestclip.utils.io import atomic_write_text

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


def write_model_card(run: str | Path) -> Path:
    """Render the card from RUN/config.yaml, RUN/clip/data.json and RUN/eval/metrics.json."""
    run = Path(run)
    metrics_path = run / "eval/metrics.json"
    if not metrics_path.is_file():
        raise ChestClipError(f"{run}: no eval/metrics.json; run `chestclip evaluate` first")
    metrics = json.loads(metrics_path.read_text())
    config = (
        yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    )
    data = (
        json.loads((run / "clip/data.json").read_text())
        if (run / "clip/data.json").is_file()
        else {}
    )
    model = config.get("model", {})
    splits = "\n".join(
        f"| {name} | {c['patients']} | {c['images']} | {c['normal']} | {c['diseased']} |"
        for name, c in metrics["data"]["splits"].items()
    )
    rows = "\n".join(
        f"| {name} | {r['features']} | {', '.join(r['text_fields'] or []) or '—'} | "
        f"{format_with_ci(r['levels']['image']['metrics']['roc_auc'])} | {format_with_ci(r['levels']['study']['metrics']['roc_auc'])} | "
        f"{format_with_ci(r['levels']['image']['metrics']['sensitivity'])} | {format_with_ci(r['levels']['image']['metrics']['specificity'])} | "
        f"{r['threshold']['value']:.3f} |"
        for name, r in metrics["heads"].items()
    )
    warnings = "\n".join(f"- {w}" for w in metrics["warnings"]) or "- none"
    card = f"""# Model card: chestclip run `{run.name}`

## Model
CLIP with image encoder `{model.get("image_encoder")}` and text encoder `{model.get("text_encoder")}`,
{model.get("embed_dim")}-d shared embedding, temperature {model.get("temperature")}; MLP heads on
the frozen features. Written by chestclip {metrics["chestclip_version"]} on {metrics["created"]}.

## Data and splits
Source `{metrics["data"].get("source")}` ({metrics["data"].get("layout")} layout); text fields
{", ".join(data.get("text_fields", [])) or "?"} cleaned `{data.get("clean", "?")}`, images
{data.get("image_size", "?")} px ({data.get("resize", "?")}). Split by patient, stratified by label.

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
    atomic_write_text(run / "MODEL_CARD.md", card)
    return run / "MODEL_CARD.md"
