"""Multi-label findings: per-finding ROC-AUC/PR-AUC and threshold metrics with patient-bootstrap
CIs, macro and micro means, per-finding thresholds chosen on validation.

Conventions (as ``chestclip.evaluation.metrics``):

- ``targets`` are frames [N, K] of 1, 0 or NaN (masked: an ignored uncertain or missing label,
  left out of every number); ``scores`` frames [N, K] of probabilities (sigmoid outputs); columns
  are the finding names, rows the images (or studies) of one split.
- A finding is averaged into the macro and micro means only when its test split has at least
  ``min_positives`` positives and as many negatives and its validation split both classes (for
  the threshold). Any other finding is reported with its status and the reason, never averaged.
- Every bootstrap resample draws patients once for all findings (``bootstrap_weights``), so the
  macro and micro intervals account for findings measured on the same patients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from chestclip.evaluation.metrics import (
    ThresholdMethod,
    _weighted_metrics,
    binary_metrics,
    bootstrap_weights,
    choose_threshold,
    percentile_intervals,
)

MIN_POSITIVES = 10
# reported per finding: name here → name in ``binary_metrics``
FINDING_METRICS = {"roc_auc": "roc_auc", "pr_auc": "pr_auc", "sensitivity": "sensitivity",
                   "specificity": "specificity", "precision": "precision_diseased",
                   "f1": "f1_diseased"}  # fmt: skip
MEAN_METRICS = ("roc_auc", "pr_auc")


def _check(targets: pd.DataFrame, scores: pd.DataFrame, what: str) -> None:
    if list(targets.columns) != list(scores.columns) or targets.shape != scores.shape:
        raise ValueError(f"{what}: targets and scores must have the same findings and rows")
    values = targets.to_numpy(dtype=float)
    if not np.isin(values[~np.isnan(values)], (0, 1)).all():
        raise ValueError(f"{what}: targets must be 0, 1 or NaN (masked)")
    probabilities = scores.to_numpy(dtype=float)[~np.isnan(values)]
    if (
        not np.isfinite(probabilities).all()
        or (probabilities < 0).any()
        or (probabilities > 1).any()
    ):
        raise ValueError(f"{what}: scores of unmasked targets must be probabilities in [0, 1]")


def finding_thresholds(
    targets: pd.DataFrame,
    scores: pd.DataFrame,
    method: ThresholdMethod = "youden",
    fixed: float = 0.5,
) -> dict[str, float | None]:
    """One decision threshold per finding from VALIDATION data (masked rows left out); None
    where the validation split lacks a class (no threshold can be chosen there)."""
    _check(targets, scores, "validation")
    thresholds = {}
    for name in targets.columns:
        kept = targets[name].notna()
        try:
            thresholds[name] = choose_threshold(
                targets.loc[kept, name], scores.loc[kept, name], method, fixed
            )
        except ValueError:
            thresholds[name] = None
    return thresholds


def _status(n_positive: int, n_negative: int, threshold: float | None, minimum: int) -> tuple:
    """(status, reason) of one finding on the test split; "ok" findings enter the means."""
    if n_positive < minimum:
        return "too_few_positives", f"{n_positive} positives in test (fewer than {minimum})"
    if n_negative < minimum:
        return "too_few_negatives", f"{n_negative} negatives in test (fewer than {minimum})"
    if threshold is None:
        return "no_threshold", "validation holds one class only: no threshold could be chosen"
    return "ok", None


def _number(value: float | None) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _entry(value: float, interval: tuple[float, float]) -> dict[str, float | None]:
    low, high = interval
    return {"value": _number(value), "ci_low": _number(low), "ci_high": _number(high)}


def _pooled(y: np.ndarray, s: np.ndarray, masks: np.ndarray, columns: list[int]) -> tuple:
    """(rows, targets, scores) of every unmasked (row, finding) pair of ``columns``, pooled."""
    rows = [np.flatnonzero(masks[:, k]) for k in columns]
    return (
        np.concatenate([*rows, np.zeros(0, int)]),
        np.concatenate([y[r, k] for r, k in zip(rows, columns, strict=True)] + [[]]).astype(int),
        np.concatenate([s[r, k] for r, k in zip(rows, columns, strict=True)] + [[]]),
    )


def evaluate_findings(
    val_targets: pd.DataFrame,
    val_scores: pd.DataFrame,
    test_targets: pd.DataFrame,
    test_scores: pd.DataFrame,
    test_groups: Sequence,
    threshold_method: ThresholdMethod = "youden",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    min_positives: int = MIN_POSITIVES,
    fixed_threshold: float = 0.5,
) -> dict[str, Any]:
    """Test metrics per finding, macro and micro means, with patient-bootstrap CIs; JSON-ready.

    ``test_groups`` [N]: the patient of each test row (the bootstrap unit). Layout::

        {"findings": {name: {"status", "reason", "n", "n_positive", "n_negative", "n_masked",
                             "n_patients", "threshold": {"value", "method", "chosen_on"},
                             "metrics": {metric: {"value", "ci_low", "ci_high"}}}},
         "macro": {"findings": [...], "roc_auc": {...}, "pr_auc": {...}},
         "micro": {"roc_auc": {...}, "pr_auc": {...}},
         "excluded": {name: reason}, "bootstrap": {...}}

    Metrics undefined for a finding (AUC without both classes, threshold metrics without a
    threshold) are null.
    """
    _check(test_targets, test_scores, "test")
    groups = np.asarray(test_groups)
    if len(groups) != len(test_targets):
        raise ValueError(f"test_groups has {len(groups)} entries for {len(test_targets)} rows")
    thresholds = finding_thresholds(val_targets, val_scores, threshold_method, fixed_threshold)
    names = list(test_targets.columns)
    y, s = test_targets.to_numpy(dtype=float), test_scores.to_numpy(dtype=float)
    masks = ~np.isnan(y)
    findings: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(names):
        labels = y[masks[:, k], k].astype(int)
        n_positive = int(labels.sum())
        status, reason = _status(n_positive, len(labels) - n_positive, thresholds[name],
                                 min_positives)  # fmt: skip
        findings[name] = {
            "status": status, "reason": reason, "n": len(labels), "n_positive": n_positive,
            "n_negative": len(labels) - n_positive, "n_masked": int((~masks[:, k]).sum()),
            "n_patients": int(pd.Series(groups[masks[:, k]]).nunique()),
            "threshold": {"value": thresholds[name], "method": threshold_method,
                          "chosen_on": "validation" if threshold_method == "youden" else "none"},
        }  # fmt: skip
    included = [k for k, name in enumerate(names) if findings[name]["status"] == "ok"]
    cuts = [thresholds[name] if thresholds[name] is not None else 0.5 for name in names]
    per_finding, macro, micro = _bootstrap(y, s, masks, groups, cuts, included, n_boot, seed)
    for k, name in enumerate(names):
        rows = masks[:, k]
        point = binary_metrics(y[rows, k], s[rows, k], cuts[k]) if rows.any() else {}
        intervals = percentile_intervals(per_finding[k], alpha)
        findings[name]["metrics"] = {
            ours: _entry(point.get(theirs, np.nan), intervals.get(theirs, (np.nan, np.nan)))
            if ours in MEAN_METRICS or thresholds[name] is not None
            else _entry(np.nan, (np.nan, np.nan))
            for ours, theirs in FINDING_METRICS.items()
        }
    _, pooled_y, pooled_s = _pooled(y, s, masks, included)
    means = {"macro": {"findings": [names[k] for k in included]}, "micro": {}}
    for metric, score in (("roc_auc", roc_auc_score), ("pr_auc", average_precision_score)):
        macro_value = micro_value = np.nan
        if included:
            macro_value = np.mean(
                [findings[names[k]]["metrics"][metric]["value"] for k in included]
            )
            micro_value = score(pooled_y, pooled_s)
        means["macro"][metric] = _entry(macro_value, percentile_intervals(macro, alpha)[metric])
        means["micro"][metric] = _entry(micro_value, percentile_intervals(micro, alpha)[metric])
    return {
        "findings": findings,
        **means,
        "excluded": {name: f["reason"] for name, f in findings.items() if f["status"] != "ok"},
        "bootstrap": {"n_boot": n_boot, "seed": seed, "alpha": alpha, "unit": "patient",
                      "min_positives": min_positives},
    }  # fmt: skip


def _bootstrap(
    y: np.ndarray,
    s: np.ndarray,
    masks: np.ndarray,
    groups: np.ndarray,
    thresholds: list[float],
    included: list[int],
    n_boot: int,
    seed: int,
) -> tuple[list[pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """Replicates [n_boot, metrics] per finding, and of the macro and micro ROC/PR-AUC over the
    ``included`` findings, every one from the same patient draws."""
    rows, pooled_y, pooled_s = _pooled(y, s, masks, included)
    per_finding: list[list[pd.DataFrame]] = [[] for _ in thresholds]
    macro, micro = [], []
    for weights in bootstrap_weights(groups, n_boot, seed, cells_per_sample=len(included) or 1):
        for k, threshold in enumerate(thresholds):
            kept = masks[:, k]
            if kept.any():
                values = _weighted_metrics(y[kept, k].astype(int), s[kept, k], threshold,
                                           weights[:, kept])  # fmt: skip
                per_finding[k].append(pd.DataFrame(values))
        if included:  # a resample leaving one finding undefined leaves the macro mean undefined
            stacked = np.stack(
                [per_finding[k][-1][list(MEAN_METRICS)].to_numpy() for k in included]
            )
            macro.append(pd.DataFrame(stacked.mean(axis=0), columns=list(MEAN_METRICS)))
            pooled = _weighted_metrics(pooled_y, pooled_s, 0.5, weights[:, rows])
            micro.append(pd.DataFrame({m: pooled[m] for m in MEAN_METRICS}))
    empty = pd.DataFrame(columns=list(MEAN_METRICS), dtype=float)
    return (
        [pd.concat(parts, ignore_index=True) if parts else empty for parts in per_finding],
        pd.concat(macro, ignore_index=True) if macro else empty,
        pd.concat(micro, ignore_index=True) if micro else empty,
    )
