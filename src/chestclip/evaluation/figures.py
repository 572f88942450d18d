"""Evaluation figures: ROC curves, confusion matrices, AUC per modality, reliability diagrams,
ROC-AUC per finding.

Each function draws every head into one figure and writes it atomically (``save_figure``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay, roc_auc_score, roc_curve

from chestclip.evaluation.plots import save_figure

CLASS_NAMES = ("normal", "diseased")


def plot_roc_curves(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], path: str | Path
) -> None:
    """One ROC curve per head ``{head: (labels, scores)}``, AUC in the legend, chance diagonal."""
    figure, ax = plt.subplots(figsize=(5.5, 5))
    for head, (labels, scores) in curves.items():
        labels = np.asarray(labels)
        if len(np.unique(labels)) < 2:
            ax.plot([], [], label=f"{head} (one class only: no ROC)")
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{head} (AUC {roc_auc_score(labels, scores):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance (AUC 0.5)")
    ax.set(
        xlabel="1 − specificity (false positive rate)",
        ylabel="sensitivity (true positive rate)",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title="ROC, normal vs diseased",
    )
    ax.legend(loc="lower right", fontsize="small")
    save_figure(figure, path)


def plot_confusion_matrices(
    matrices: Mapping[str, Sequence[Sequence[int]]], path: str | Path
) -> None:
    """One panel of counts per head, ``{head: [[tn, fp], [fn, tp]]}``."""
    figure, axes = plt.subplots(1, len(matrices), figsize=(3.6 * len(matrices), 3.4), squeeze=False)
    for ax, (head, matrix) in zip(axes[0], matrices.items(), strict=True):
        display = ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(CLASS_NAMES))
        display.plot(ax=ax, cmap="Blues", colorbar=False, values_format="d")
        ax.set_title(head)
    save_figure(figure, path)


def plot_modality_bars(
    aucs: Mapping[str, tuple[float | None, float | None, float | None]],
    path: str | Path,
    metric: str = "ROC-AUC",
) -> None:
    """Bars ``{head: (value, ci_low, ci_high)}`` with CI error bars (image vs text vs multimodal).

    A missing interval (None/NaN) draws the bar without error bar; a missing value draws nothing.
    """
    names = list(aucs)
    values = np.array([_number(aucs[n][0]) for n in names])
    lows = np.array([_number(aucs[n][1]) for n in names])
    highs = np.array([_number(aucs[n][2]) for n in names])
    errors = np.nan_to_num(np.vstack([values - lows, highs - values]))
    figure, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 4))
    positions = np.arange(len(names))
    ax.bar(positions, np.nan_to_num(values), yerr=errors, capsize=6, color="tab:blue", alpha=0.8)
    for x, value in zip(positions, values, strict=True):
        if not math.isnan(value):
            ax.text(x, value / 2, f"{value:.3f}", ha="center", color="white", fontweight="bold")
    ax.axhline(0.5, linestyle="--", color="grey", label="chance")
    ax.set_xticks(positions, names)
    ax.set(ylabel=f"{metric} (95% CI)", ylim=(0, 1), title=f"{metric} by modality")
    ax.legend(loc="lower right", fontsize="small")
    save_figure(figure, path)


def plot_reliability(curves: Mapping[str, pd.DataFrame], path: str | Path) -> None:
    """Reliability diagram from ``reliability_bins`` frames: observed vs predicted P(diseased)."""
    figure, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for head, bins in curves.items():
        filled = bins[bins["count"] > 0]
        ax.plot(filled["mean_predicted"], filled["observed_frequency"], marker="o", label=head)
    ax.set(
        xlabel="mean predicted P(diseased)",
        ylabel="observed fraction diseased",
        xlim=(0, 1),
        ylim=(0, 1),
        title="reliability (equal-width bins)",
    )
    ax.legend(loc="upper left", fontsize="small")
    save_figure(figure, path)


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def plot_recall_vs_chance(directions: Mapping[str, Mapping[str, float]], path: str | Path) -> None:
    """Recall@K per retrieval direction ``{direction: {"recall@K": r, "chance@K": c}}`` as bars,
    the chance level of each K as a dashed tick over its bar."""
    figure, axes = plt.subplots(
        1, len(directions), figsize=(4.5 * len(directions), 4), squeeze=False
    )
    for ax, (direction, values) in zip(axes[0], directions.items(), strict=True):
        ks = sorted(int(key.split("@")[1]) for key in values if key.startswith("recall@"))
        positions = np.arange(len(ks))
        ax.bar(
            positions,
            [values[f"recall@{k}"] for k in ks],
            color="tab:blue",
            alpha=0.8,
            label="recall",
        )
        for x, k in zip(positions, ks, strict=True):
            label = "chance" if x == 0 else None
            ax.hlines(
                values[f"chance@{k}"],
                x - 0.4,
                x + 0.4,
                colors="black",
                linestyles="--",
                label=label,
            )
        ax.set_xticks(positions, [f"R@{k}" for k in ks])
        ax.set(ylim=(0, 1), title=direction.replace("_", " "), ylabel="recall")
        ax.legend(loc="upper left", fontsize="small")
    save_figure(figure, path)


def plot_finding_aucs(
    aucs: Mapping[str, Mapping[str, tuple[float | None, float | None, float | None, str]]],
    path: str | Path,
) -> None:
    """Per-finding test ROC-AUC with 95% CIs, one bar per head ``{head: {finding: (value,
    ci_low, ci_high, status)}}``; findings left out of the means (status not ``ok``) hatched and
    marked, undefined AUCs drawn as no bar."""
    heads = list(aucs)
    findings = list(dict.fromkeys(name for table in aucs.values() for name in table))
    height = 0.8 / max(len(heads), 1)
    figure, ax = plt.subplots(figsize=(7, 0.45 * len(findings) * max(len(heads), 1) ** 0.5 + 1.5))
    for h, head in enumerate(heads):
        rows = [aucs[head].get(name, (None, None, None, "absent")) for name in findings]
        values = np.array([_number(r[0]) for r in rows])
        lows, highs = (np.array([_number(r[i]) for r in rows]) for i in (1, 2))
        # a percentile interval of few resamples may not hold its point estimate: no negative bar
        errors = np.clip(np.nan_to_num(np.vstack([values - lows, highs - values])), 0, None)
        positions = np.arange(len(findings)) + (h - (len(heads) - 1) / 2) * height
        bars = ax.barh(positions, np.nan_to_num(values), height, xerr=errors, capsize=3,
                       label=head, alpha=0.85)  # fmt: skip
        for bar, row in zip(bars, rows, strict=True):
            if row[3] != "ok":
                bar.set_hatch("//")
                bar.set_alpha(0.4)
    labels = [
        name if all(aucs[h].get(name, (0, 0, 0, ""))[3] == "ok" for h in heads)
        else f"{name} (not averaged)"
        for name in findings
    ]  # fmt: skip
    ax.axvline(0.5, linestyle="--", color="grey", label="chance")
    ax.set_yticks(np.arange(len(findings)), labels)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="ROC-AUC per image (95% CI)", title="ROC-AUC per finding (test)")
    ax.legend(loc="lower right", fontsize="small")
    save_figure(figure, path)
