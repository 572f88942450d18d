"""``RUN/MODEL_CARD.md``: what the model is, what it was trained and tested on, how well it did
(with CIs), and what it must not be used for — written from the run's own files.

The card is a Hugging Face Hub model card: YAML metadata (license, library, datasets, every
head's test metrics with their 95 % CIs in ``model-index``) above the Markdown, so a run exported
for the Hub (``chestclip export --format hf``, ``chestclip push``) carries it as ``README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCardData

from chestclip.errors import ChestClipError
from chestclip.evaluation.metrics import format_with_ci
from chestclip.utils.io import atomic_write_text
from chestclip.utils.run_layout import RunLayout

BASELINE_FEATURES = "tfidf"  # the bag-of-words baselines evaluated beside the heads
LICENSE = "apache-2.0"  # chestclip's; the training data keeps its own terms (see the card)
HUB_METRICS = {  # facts key → (model-index metric type, what the card calls it)
    "roc_auc_image": ("roc_auc", "ROC-AUC per image"),
    "roc_auc_study": ("roc_auc", "ROC-AUC per study"),
    "sensitivity": ("recall", "sensitivity"),
    "specificity": ("specificity", "specificity"),
}

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
    source = metrics.get("data", {}).get("source")
    config = yaml.safe_load(layout.config.read_text()) if layout.config.is_file() else {}
    data = _read_json(layout.training_data)
    model = config.get("model", {})
    evaluated = metrics.get("data", {})
    heads = {
        name: {
            "features": r["features"],
            "text_fields": r["text_fields"],
            "reads_findings": r.get("text_leaks_findings", False),
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
            for key in ("image_encoder", "text_encoder", "init_from", "embed_dim", "temperature")
        },
        "data": {
            "source": evaluated.get("source"),
            "layout": evaluated.get("layout"),
            # `chestclip phantom` writes its ground truth beside the studies it generates
            "synthetic": bool(source) and (Path(source) / "phantom_truth.csv").is_file(),
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


def card_metadata(facts: dict[str, Any]) -> ModelCardData:
    """The card's YAML metadata: license, library, tags, datasets and, in ``model-index``, the
    test metrics of every head of the model (not the bag-of-words baselines) with their 95 % CIs
    and validation threshold in ``args``."""
    data = facts["data"]
    heads = {name: h for name, h in facts["heads"].items() if h["features"] != BASELINE_FEATURES}
    dataset = (
        ("chestclip-phantoms", "synthetic chest X-ray phantoms (chestclip phantom)")
        if data["synthetic"]
        else ("iu-xray", "Indiana University chest X-rays (IU X-Ray / OpenI)")
    )
    results = [
        EvalResult(
            task_type="image-classification",
            task_name="normal vs diseased",
            dataset_type=dataset[0],
            dataset_name=f"{dataset[1]}, test split by patient",
            dataset_split="test",
            metric_type=metric_type,
            metric_value=head[key]["value"],
            metric_name=f"{label}, {name} head",
            metric_config=name,
            metric_args={
                "ci_low": head[key]["ci_low"],
                "ci_high": head[key]["ci_high"],
                "ci": "95 %, bootstrap over patients",
                "threshold": head["threshold"],
                "threshold_chosen_on": "validation",
                "reads_findings": head[
                    "reads_findings"
                ],  # then it scores the report, not the image
            },
        )
        for name, head in heads.items()
        for key, (metric_type, label) in HUB_METRICS.items()
        if head[key]["value"] is not None
    ]
    return ModelCardData(
        license=LICENSE,
        library_name="chestclip",
        pipeline_tag="image-classification",
        tags=["chestclip", "clip", "chest-x-ray", "medical-imaging", "research-only"],
        datasets=[dataset[1]],
        metrics=sorted({metric_type for metric_type, _ in HUB_METRICS.values()}),
        model_name=f"chestclip-{facts['run']}",
        eval_results=results or None,
        chestclip={
            "version": facts["chestclip_version"],
            "intended_use": "research only; not a medical device",
            "thresholds": {name: head["threshold"] for name, head in heads.items()},
        },
    )


def render_model_card(run: str | Path) -> str:
    """The run's Hub model card: YAML metadata, then the Markdown (needs ``chestclip evaluate``)."""
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
    started = f", initialised from `{model['init_from']}`" if model.get("init_from") else ""
    card = f"""---
{card_metadata(facts).to_yaml()}
---

# Model card: chestclip run `{layout.root.name}`

## Model
CLIP with image encoder `{model.get("image_encoder")}` and text encoder `{model.get("text_encoder")}`{started},
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
- The training data keeps its own terms of use; the license above is chestclip's.

## How to use
A folder exported by `chestclip export --format hf` (or its Hub repository) holds the CLIP
(`config.json`, `model.safetensors`, `tokenizer/`), the heads with their validation thresholds
(`heads/`), how new images must be prepared (`data.json`) and the test metrics (`eval/`):

```python
from chestclip.models import ChestCLIP
model = ChestCLIP.from_pretrained("FOLDER_OR_REPO_ID")
```

```bash
chestclip predict --run FOLDER scan.dcm     # FOLDER: the export, or a download of the repository
```
"""
    return card


def write_model_card(run: str | Path) -> Path:
    """:func:`render_model_card` as RUN/MODEL_CARD.md (needs ``chestclip evaluate``)."""
    layout = RunLayout(run)
    atomic_write_text(layout.model_card, render_model_card(run))
    return layout.model_card
