"""The evaluate stage's multi-label part: every head in ``RUN/heads/findings/`` scored on the
validation and test splits with ``evaluate_findings`` — per-finding thresholds on validation,
metrics with patient-bootstrap CIs on test, per image and per study (views averaged).

Writes ``RUN/eval/findings.json`` (schema: ``chestclip.evaluation.schema.FINDINGS_SCHEMA``),
``RUN/eval/findings_predictions.csv`` (one row per image, head and finding: target and
probability) and ``RUN/plots/findings_auc.png``. A run without multi-label heads gets none of
them (older ones are removed: they would describe heads that no longer exist).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from chestclip.data import PreparedData
from chestclip.evaluation.baselines import LEAK_WARNING, text_leaks_findings
from chestclip.evaluation.features import FeatureCache
from chestclip.evaluation.figures import plot_finding_aucs
from chestclip.evaluation.metrics import ThresholdMethod, format_with_ci
from chestclip.evaluation.multilabel import evaluate_findings
from chestclip.evaluation.schema import (
    FINDINGS_SCHEMA_VERSION,
    document_header,
    validate_findings,
)
from chestclip.models import load_clip
from chestclip.training.findings_probe import finding_targets
from chestclip.training.probe import head_logits, load_head
from chestclip.utils.io import atomic_path, atomic_write_json
from chestclip.utils.run_layout import RunLayout

SPLITS = ("val", "test")
FINDINGS_PREFIX = "findings/"  # how a multi-label head is named next to the binary ones


def level_frames(
    data: PreparedData, split: str, scores: pd.DataFrame
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.Series]]:
    """(targets, scores, patients) per level: ``image`` (one row per image of ``split``) and
    ``study`` (one row per study, its views' probabilities averaged)."""
    images = data.split_images(split)
    targets = finding_targets(data, split)[list(scores.columns)]
    by_study = scores.groupby(images["uid"].to_numpy(), sort=True).mean()
    studies = data.studies.set_index("uid").loc[by_study.index]
    return {
        "image": (targets, scores, images["patient_id"]),
        "study": (
            data.findings.loc[by_study.index, list(scores.columns)].reset_index(drop=True),
            by_study.reset_index(drop=True),
            studies["patient_id"].reset_index(drop=True),
        ),
    }


def evaluate_finding_head(
    data: PreparedData,
    scores: dict[str, pd.DataFrame],
    threshold_method: ThresholdMethod,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """``evaluate_findings`` per level of one head's validation and test probabilities."""
    frames = {split: level_frames(data, split, scores[split]) for split in SPLITS}
    levels = {}
    for level in ("image", "study"):
        (val_y, val_s, _), (test_y, test_s, patients) = (frames[s][level] for s in SPLITS)
        levels[level] = evaluate_findings(
            val_y, val_s, test_y, test_s, patients.to_numpy(), threshold_method, n_boot, seed
        )
    return levels


def evaluate_finding_heads(
    run: RunLayout,
    data: PreparedData,
    threshold_method: ThresholdMethod = "youden",
    n_boot: int = 1000,
    seed: int = 0,
    device: torch.device | None = None,
    precision: str = "32-true",
) -> dict[str, Any] | None:
    """Score and evaluate every multi-label head of ``run`` (each checked against the run's CLIP
    and ``data`` first); write findings.json, the predictions and the figure. None (and no
    outputs) when the run has no multi-label head."""
    directories = run.finding_head_dirs()
    if not directories:
        for path in (run.findings_metrics, run.findings_predictions, run.plot("findings_auc")):
            path.unlink(missing_ok=True)
        return None
    loaded = [load_head(directory) for directory in directories]
    for directory, (_, info) in zip(directories, loaded, strict=True):
        run.check_head(directory, info, data.root)
    model, tokenizer = load_clip(run.root, device)
    cache = FeatureCache(run.root, model, tokenizer, data, precision)
    heads, warnings, predictions = {}, [], []
    for head, info in loaded:
        scores = {
            split: pd.DataFrame(
                head_logits(cache, head, info, split).sigmoid().numpy(), columns=info["findings"]
            )
            for split in SPLITS
        }
        fields = info["text_fields"]
        leaks = bool(fields) and text_leaks_findings(fields)
        name = FINDINGS_PREFIX + info["name"]
        if leaks:
            warnings.append(LEAK_WARNING.format(head=name, fields="+".join(fields)))
        heads[name] = {
            "features": "+".join(info["inputs"]),
            "text_fields": fields,
            "text_leaks_findings": leaks,
            "not_trained": info.get("skipped_findings", {}),
            "levels": evaluate_finding_head(data, scores, threshold_method, n_boot, seed),
        }
        predictions += [long_predictions(data, split, name, scores[split]) for split in SPLITS]
    document = {
        **document_header(FINDINGS_SCHEMA_VERSION, data.summary),
        "label_policy": {k: data.summary["config"].get(k) for k in ("uncertain", "missing")},
        "heads": heads,
        "warnings": warnings,
    }
    problems = validate_findings(document)
    if problems:
        raise RuntimeError(f"findings.json does not match its schema: {problems[:3]}")
    atomic_write_json(run.findings_metrics, document)
    with atomic_path(run.findings_predictions) as tmp:
        pd.concat(predictions, ignore_index=True).to_csv(tmp, index=False)
    plot_finding_aucs(finding_aucs(document), run.plot("findings_auc"))
    return document


def long_predictions(
    data: PreparedData, split: str, head: str, scores: pd.DataFrame
) -> pd.DataFrame:
    """One row per image and finding: ``image_id, uid, split, head, finding, target,
    probability`` (target empty where masked)."""
    images = data.split_images(split)[["image_id", "uid", "split"]]
    targets = finding_targets(data, split)[list(scores.columns)]
    rows = images.join(scores).melt(
        id_vars=list(images.columns), var_name="finding", value_name="probability"
    )
    rows["target"] = targets.melt(value_name="target")["target"].to_numpy()
    rows.insert(3, "head", head)
    return rows[["image_id", "uid", "split", "head", "finding", "target", "probability"]]


def finding_aucs(
    document: dict[str, Any], level: str = "image"
) -> dict[str, dict[str, tuple[float | None, float | None, float | None, str]]]:
    """``{head: {finding: (ROC-AUC, ci_low, ci_high, status)}}`` of a findings.json document."""
    table = {}
    for head, result in document["heads"].items():
        table[head] = {
            name: (*(f["metrics"]["roc_auc"][k] for k in ("value", "ci_low", "ci_high")),
                   f["status"])
            for name, f in result["levels"][level]["findings"].items()
        }  # fmt: skip
    return table


def findings_lines(document: dict[str, Any], level: str = "image") -> list[str]:
    """The per-finding table as printed by ``chestclip evaluate`` and ``chestclip run``: each
    head's ROC-AUC per finding with its CI, positives/rows and status, then the macro and micro
    means and the findings it could not learn."""
    lines = [
        f"findings (test, per {level}; thresholds chosen on validation; 95% CI by patient):",
        f"  {'head':26s} {'finding':28s} {'ROC-AUC (95% CI)':24s} {'pos/n':>9s}  status",
    ]
    for head, result in document["heads"].items():
        block = result["levels"][level]
        for name, entry in block["findings"].items():
            auc = format_with_ci(entry["metrics"]["roc_auc"])
            counts = f"{entry['n_positive']}/{entry['n']}"
            status = entry["status"] if entry["status"] == "ok" else entry["reason"]
            lines.append(f"  {head:26s} {name:28s} {auc:24s} {counts:>9s}  {status}")
        n = len(block["macro"]["findings"])
        lines.append(
            f"  {head:26s} macro ROC-AUC {format_with_ci(block['macro']['roc_auc'])}, micro "
            f"{format_with_ci(block['micro']['roc_auc'])} over {n} finding{'s' * (n != 1)}"
        )
        for name, reason in result["not_trained"].items():
            lines.append(f"  {head:26s} {name:28s} not trained: {reason}")
    return lines + [f"warning: {warning}" for warning in document["warnings"]]
