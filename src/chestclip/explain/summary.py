"""The per-method summary of an explained split: localisation and faithfulness figures, with
bootstrap intervals on the gains over chance and on the randomisation cascade's rank
correlations, and the rule that chooses the default method (applied to validation images)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from chestclip.evaluation.metrics import format_with_ci

# faithfulness.json key → column title, in display order
SUMMARY_COLUMNS = {
    "pointing_game": "pointing",
    "pointing_baseline_area": "lesion area (chance)",
    "energy_in_lesion": "energy in lesion",
    "energy_gain": "energy − area (95% CI)",
    "topk_iou": "IoU top 10%",
    "deletion_auc": "deletion ↓",
    "random_deletion_auc": "deletion, random",
    "deletion_gain": "random − deletion (95% CI)",
    "insertion_auc": "insertion ↑",
    "random_insertion_auc": "insertion, random",
    "randomisation_rank_correlation": "rank corr., top block randomised ↓ (95% CI)",
    "seconds_per_image": "s / image",
    "images": "images",
    "empty_maps": "empty maps",
}


def _mean(values: pd.Series) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def _mean_with_ci(values: pd.Series, seed: int, n_boot: int = 2000) -> dict[str, Any] | None:
    """Mean over images with a 95 % percentile bootstrap interval (images resampled)."""
    values = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if len(values) == 0:
        return None
    draws = np.random.default_rng(seed).integers(0, len(values), size=(n_boot, len(values)))
    low, high = np.quantile(values[draws].mean(axis=1), [0.025, 0.975])
    return {"value": float(values.mean()), "ci_low": float(low), "ci_high": float(high)}


def summarise(
    roi: pd.DataFrame,
    methods: Sequence[str],
    rank_correlation: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """``{"methods": {method: figures}}``: pointing game and energy in the lesion vs the
    lesion-area baseline, IoU, deletion/insertion AUC vs random order, the randomisation rank
    correlation given in ``rank_correlation`` (None when not measured), seconds per image.

    Empty (flat) maps have no order to delete in and no mass to place: they are counted
    (``empty_maps``) and left out of every figure but ``images`` and ``seconds_per_image``.
    Two paired per-image gains carry 95 % bootstrap intervals, so a method is said to beat
    chance only when its interval excludes 0: ``energy_gain`` (energy in the lesion minus the
    lesion's area) and ``deletion_gain`` (random-order deletion AUC minus the map's).
    """
    rank_correlation = rank_correlation or {}
    per_method = {}
    for method in methods:
        every = roi[roi["method"] == method]
        part = every[~every["empty_map"].astype(bool)]
        lesions = part.dropna(subset=["pointing_hit"])
        energy_gain = _mean_with_ci(lesions["energy_in_lesion"] - lesions["lesion_area"], seed)
        deletion_gain = _mean_with_ci(part["random_deletion_auc"] - part["deletion_auc"], seed)
        per_method[method] = {
            "images": len(every),
            "empty_maps": len(every) - len(part),
            "images_with_lesion": len(lesions),
            "pointing_game": _mean(lesions["pointing_hit"].astype(float)),
            "pointing_baseline_area": _mean(lesions["lesion_area"]),
            "energy_in_lesion": _mean(lesions["energy_in_lesion"]),
            "energy_gain": energy_gain,
            "topk_iou": _mean(lesions["topk_iou"]),
            "deletion_auc": _mean(part["deletion_auc"]),
            "random_deletion_auc": _mean(part["random_deletion_auc"]),
            "deletion_gain": deletion_gain,
            "insertion_auc": _mean(part["insertion_auc"]),
            "random_insertion_auc": _mean(part["random_insertion_auc"]),
            "randomisation_rank_correlation": rank_correlation.get(method),
            "seconds_per_image": _mean(every["seconds"]),
            "agreement_with_report": _mean(part["agreement"]),
        }
    return {"methods": per_method}


def choose_default_method(per_method: dict[str, dict[str, Any]]) -> str:
    """The default among the faithful methods (deletion gain's interval above 0; all methods
    when none is): the best energy gain where lesions are known, else the best deletion gain.
    A map that points at lesions without driving the score would mislead, so faithfulness
    comes first. Pass VALIDATION figures: the split that is reported must not choose."""

    def merit(method: str) -> tuple[bool, float]:
        m = per_method[method]
        deletion = m["deletion_gain"]
        faithful = deletion is not None and deletion["ci_low"] > 0
        gain = m["energy_gain"] or deletion
        return faithful, gain["value"] if gain else -math.inf

    return max(per_method, key=merit)


def summarise_cascade(
    cascade: dict[str, list[tuple[str, int, np.ndarray]]], seed: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """Per method, per randomisation step ``(step, blocks, per-image rank correlations)``: the
    mean rank correlation with a 95 % bootstrap interval over images, and the number of image
    pairs it is measured on (flat maps have no ranks)."""
    return {
        method: [
            {
                "step": step,
                "blocks": blocks,
                "rank_correlation": _mean_with_ci(pd.Series(values), seed),
                "pairs": int(np.isfinite(values).sum()),
            }
            for step, blocks, values in steps
        ]
        for method, steps in cascade.items()
    }


def _display(value: Any) -> str:
    if isinstance(value, dict):
        return format_with_ci(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def summary_table(summary: dict[str, Any]) -> pd.DataFrame:
    """The per-method figures of :func:`summarise` as display strings (rows: methods)."""
    return pd.DataFrame(
        {
            title: {name: _display(m[key]) for name, m in summary["methods"].items()}
            for key, title in SUMMARY_COLUMNS.items()
        }
    )
