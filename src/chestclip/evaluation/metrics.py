"""Normal (0) vs diseased (1) metrics, thresholds, patient-bootstrap intervals and reliability bins.

Conventions used everywhere here:

- ``labels`` are 0 (normal) or 1 (diseased); ``scores`` are the predicted probability of
  *diseased*, in [0, 1] wherever calibration (ECE, Brier) is computed.
- A sample is predicted diseased when ``score >= threshold`` (scikit-learn's ``roc_curve`` rule).
- Thresholds are chosen on VALIDATION data only; test data is only ever scored.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

ThresholdMethod = Literal["youden", "fixed"]
THRESHOLD_METHODS: tuple[str, ...] = ("youden", "fixed")
LEVELS: tuple[str, ...] = ("image", "study")
# Every metric reported with a confidence interval, in report order; all lie in [0, 1].
METRIC_NAMES: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "roc_auc",
    "pr_auc",
    "sensitivity",
    "specificity",
    "accuracy_normal",
    "accuracy_diseased",
    "precision_normal",
    "recall_normal",
    "f1_normal",
    "precision_diseased",
    "recall_diseased",
    "f1_diseased",
    "ece",
    "brier",
)
ECE_BINS = 10
_MAX_WEIGHT_CELLS = 4_000_000  # bootstrap weights held at once: [chunk, n] float64 ≈ 32 MB


def _as_binary(
    labels: Sequence | np.ndarray, scores: Sequence | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(labels int64 [N], scores float64 [N])``; a clear ValueError otherwise."""
    y, s = np.asarray(labels), np.asarray(scores, dtype=float)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError(
            f"labels and scores must be 1-D and equally long, got {y.shape}, {s.shape}"
        )
    if len(y) == 0:
        raise ValueError("labels and scores are empty")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 (normal) or 1 (diseased), got {np.unique(y)[:5]}")
    if not np.isfinite(s).all():
        raise ValueError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    return y.astype(np.int64), s


def _as_probabilities(
    labels: Sequence | np.ndarray, scores: Sequence | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    y, s = _as_binary(labels, scores)
    if s.min() < 0 or s.max() > 1:
        raise ValueError(f"scores must be probabilities in [0, 1], got [{s.min():g}, {s.max():g}]")
    return y, s


def _has_both_classes(y: np.ndarray) -> bool:
    return bool(y.min() == 0 and y.max() == 1)


def choose_threshold(
    labels: Sequence | np.ndarray,
    scores: Sequence | np.ndarray,
    method: ThresholdMethod = "youden",
    fixed: float = 0.5,
) -> float:
    """The decision threshold; pass VALIDATION labels and scores only, never test data.

    ``youden``: the score maximising Youden's J = sensitivity + specificity − 1 on the ROC curve.
    Ties go to the highest such score, so the result depends on the values only, not their order.
    ``fixed``: ``fixed``, whatever the data.
    """
    if method == "fixed":
        return float(fixed)
    if method != "youden":
        raise ValueError(f"threshold method must be one of {THRESHOLD_METHODS}, got {method!r}")
    y, s = _as_binary(labels, scores)
    if not _has_both_classes(y):
        raise ValueError("Youden's J needs both normal and diseased samples in the validation data")
    # roc_curve lists each distinct score once, highest first (its order does not depend on the
    # sample order); argmax takes the first maximum. The leading +inf point predicts nothing.
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    return float(thresholds[finite][np.argmax((tpr - fpr)[finite])])


def confusion(
    labels: Sequence | np.ndarray, scores: Sequence | np.ndarray, threshold: float
) -> list[list[int]]:
    """``[[tn, fp], [fn, tp]]`` (rows: true normal/diseased; columns: predicted)."""
    y, s = _as_binary(labels, scores)
    return confusion_matrix(y, (s >= threshold).astype(int), labels=[0, 1]).tolist()


def reliability_bins(
    labels: Sequence | np.ndarray, scores: Sequence | np.ndarray, n_bins: int = ECE_BINS
) -> pd.DataFrame:
    """Equal-width bins of P(diseased) on [0, 1], binned like sklearn's ``calibration_curve``.

    Columns ``bin, lower, upper, mean_predicted, observed_frequency, count``; one row per bin,
    empty bins included with NaN means. (``calibration_curve`` drops empty bins and counts.)
    """
    y, s = _as_probabilities(labels, scores)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_of = np.searchsorted(edges[1:-1], s)
    count = np.bincount(bin_of, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_predicted = np.bincount(bin_of, weights=s, minlength=n_bins) / count
        observed = np.bincount(bin_of, weights=y, minlength=n_bins) / count
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "mean_predicted": mean_predicted,
            "observed_frequency": observed,
            "count": count,
        }
    )


def expected_calibration_error(
    labels: Sequence | np.ndarray, scores: Sequence | np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """Σ_bins (count / N)·|observed frequency − mean predicted| over equal-width bins.

    Hand-written: scikit-learn has no ECE.
    """
    bins = reliability_bins(labels, scores, n_bins)
    filled = bins[bins["count"] > 0]
    gaps = (filled["observed_frequency"] - filled["mean_predicted"]).abs()
    return float((filled["count"] * gaps).sum() / bins["count"].sum())


def binary_metrics(
    labels: Sequence | np.ndarray, scores: Sequence | np.ndarray, threshold: float
) -> dict[str, float]:
    """Every metric of ``METRIC_NAMES`` plus ``n`` and ``n_positive``, from scikit-learn but ECE.

    ``accuracy_normal`` (accuracy on normal samples) is the specificity and ``accuracy_diseased``
    the sensitivity. A metric undefined for the input (AUC on a single class, precision of a class
    never predicted) is NaN, never an exception.
    """
    y, s = _as_probabilities(labels, scores)
    predicted = (s >= threshold).astype(np.int64)
    both = _has_both_classes(y)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, labels=[0, 1], zero_division=np.nan
    )
    with warnings.catch_warnings():  # single-class input: the NaN below is the report
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        metrics = {
            "accuracy": accuracy_score(y, predicted),
            "balanced_accuracy": balanced_accuracy_score(y, predicted) if both else np.nan,
            "roc_auc": roc_auc_score(y, s) if both else np.nan,
            "pr_auc": average_precision_score(y, s) if both else np.nan,
            "sensitivity": recall[1],
            "specificity": recall[0],
            "accuracy_normal": recall[0],
            "accuracy_diseased": recall[1],
            "precision_normal": precision[0],
            "recall_normal": recall[0],
            "f1_normal": f1[0],
            "precision_diseased": precision[1],
            "recall_diseased": recall[1],
            "f1_diseased": f1[1],
            "ece": expected_calibration_error(y, s),
            "brier": brier_score_loss(y, s, pos_label=1, labels=[0, 1]),
        }
    return {**{k: float(v) for k, v in metrics.items()}, "n": len(y), "n_positive": int(y.sum())}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (as zero_division=nan)."""
    out = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _score_blocks(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weight of the positives and of the negatives at each distinct score, lowest first:
    [B, distinct scores] each, for weights [B, N] (ties share a block, as in ``roc_curve``)."""
    order = np.argsort(s, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(s[order]) > 0])
    w_sorted, y_sorted = w[:, order], y[order]
    pos_block = np.add.reduceat(w_sorted * y_sorted, starts, axis=1)
    neg_block = np.add.reduceat(w_sorted * (1 - y_sorted), starts, axis=1)
    return pos_block, neg_block


def _roc_auc_of_blocks(pos_block: np.ndarray, neg_block: np.ndarray) -> np.ndarray:
    """ROC-AUC [B] from ``_score_blocks``: P(positive scores above negative), ties half."""
    neg_below = np.cumsum(neg_block, axis=1) - neg_block
    pairs = pos_block.sum(axis=1) * neg_block.sum(axis=1)
    return _ratio((pos_block * (neg_below + 0.5 * neg_block)).sum(axis=1), pairs)


def _weighted_metrics(
    y: np.ndarray, s: np.ndarray, threshold: float, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """``binary_metrics`` of B weighted copies of the data at once; weights [B, N] → values [B].

    Integer weights equal repeating each sample that many times, i.e. a bootstrap resample.
    Hand-written because calling scikit-learn per resample is ~100× slower (input checks dominate).
    """
    w = np.asarray(weights, dtype=float)
    predicted = s >= threshold
    total, positives = w.sum(axis=1), w @ y
    negatives = total - positives
    tp, fp = w @ (predicted & (y == 1)), w @ (predicted & (y == 0))
    fn, tn = positives - tp, negatives - fp
    sensitivity, specificity = _ratio(tp, positives), _ratio(tn, negatives)

    pos_block, neg_block = _score_blocks(y, s, w)
    pairs = positives * negatives
    roc_auc = _roc_auc_of_blocks(pos_block, neg_block)
    tp_down = np.cumsum(pos_block[:, ::-1], axis=1)  # thresholds from the highest score down
    fp_down = np.cumsum(neg_block[:, ::-1], axis=1)
    precision_down = np.nan_to_num(_ratio(tp_down, tp_down + fp_down))
    pr_auc = _ratio((pos_block[:, ::-1] * precision_down).sum(axis=1), positives)
    pr_auc[pairs == 0] = np.nan

    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    in_bin = np.searchsorted(edges[1:-1], s)[:, None] == np.arange(ECE_BINS)  # [N, bins]
    gaps = np.abs(w @ (in_bin * y[:, None]) - w @ (in_bin * s[:, None])).sum(axis=1)
    return {
        "accuracy": _ratio(tp + tn, total),
        "balanced_accuracy": (sensitivity + specificity) / 2,
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "accuracy_normal": specificity,
        "accuracy_diseased": sensitivity,
        "precision_normal": _ratio(tn, tn + fn),
        "recall_normal": specificity,
        "f1_normal": _ratio(2 * tn, 2 * tn + fn + fp),
        "precision_diseased": _ratio(tp, tp + fp),
        "recall_diseased": sensitivity,
        "f1_diseased": _ratio(2 * tp, 2 * tp + fp + fn),
        "ece": _ratio(gaps, total),
        "brier": _ratio(w @ (s - y) ** 2, total),
    }


def bootstrap_weights(
    groups: Sequence | np.ndarray, n_boot: int, seed: int = 0, cells_per_sample: int = 1
) -> Iterator[np.ndarray]:
    """Patient-bootstrap resamples as sample weights, in chunks: arrays [chunk, N] whose row b
    counts how often each sample's group was drawn in resample b (``n_boot`` rows in all).

    Each resample draws as many groups as there are, with replacement. Deterministic for a seed
    and independent of the row order; ``cells_per_sample`` shrinks chunks for callers that widen
    each row (``_MAX_WEIGHT_CELLS`` bounds the memory).
    """
    group_of, _ = pd.factorize(pd.Series(np.asarray(groups)), sort=True)
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    n_groups = int(group_of.max()) + 1 if len(group_of) else 0
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_WEIGHT_CELLS // max(len(group_of) * cells_per_sample, n_groups, 1))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        draws = rng.integers(0, n_groups, size=(size, n_groups))
        rows = np.repeat(np.arange(size), n_groups)
        times_drawn = np.bincount(rows * n_groups + draws.ravel(), minlength=size * n_groups)
        yield times_drawn.reshape(size, n_groups)[:, group_of]  # [size, N]


def _resampled_units(groups: Sequence | np.ndarray | None, n: int) -> np.ndarray:
    """The bootstrap's unit per sample: its group (patient), or the sample itself."""
    units = np.arange(n) if groups is None else np.asarray(groups)
    if len(units) != n:
        raise ValueError(f"groups has {len(units)} entries for {n} samples")
    return units


def bootstrap_replicates(
    labels: Sequence | np.ndarray,
    scores: Sequence | np.ndarray,
    groups: Sequence | np.ndarray | None,
    threshold: float,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """``n_boot`` bootstrap values of every metric: a frame [n_boot, METRIC_NAMES].

    Each replicate draws as many GROUPS (patients) as there are, with replacement, and takes every
    sample of a drawn group along; ``groups=None`` resamples samples independently. Metrics
    undefined in a replicate (AUC when it holds one class only) are NaN. Deterministic for a seed
    and independent of the row order.
    """
    y, s = _as_probabilities(labels, scores)
    parts = [
        pd.DataFrame(_weighted_metrics(y, s, threshold, weights))
        for weights in bootstrap_weights(_resampled_units(groups, len(y)), n_boot, seed)
    ]
    if not parts:
        return pd.DataFrame(columns=list(METRIC_NAMES), dtype=float)
    return pd.concat(parts, ignore_index=True)[list(METRIC_NAMES)]


def paired_auc_difference(
    labels: Sequence | np.ndarray,
    scores: Sequence | np.ndarray,
    reference_scores: Sequence | np.ndarray,
    groups: Sequence | np.ndarray | None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """ROC-AUC of ``scores`` minus ROC-AUC of ``reference_scores`` on the same samples, with a
    paired percentile bootstrap interval, JSON-ready (NaN → null).

    Paired: each replicate resamples the patients (``groups``) once and scores BOTH heads on that
    one resample, so what makes the two AUCs move together (which patients happened to be drawn)
    cancels in the difference; two separate intervals that overlap say nothing about it. A
    difference is established when its interval excludes 0.
    """
    y, s = _as_binary(labels, scores)
    _, r = _as_binary(labels, reference_scores)
    one = np.ones((1, len(y)))
    point = _roc_auc_of_blocks(*_score_blocks(y, s, one)) - _roc_auc_of_blocks(
        *_score_blocks(y, r, one)
    )
    differences = np.concatenate(
        [
            _roc_auc_of_blocks(*_score_blocks(y, s, w))
            - _roc_auc_of_blocks(*_score_blocks(y, r, w))
            for w in bootstrap_weights(_resampled_units(groups, len(y)), n_boot, seed)
        ]
        or [np.empty(0)]
    )
    ((low, high),) = percentile_intervals(pd.DataFrame({"difference": differences}), alpha).values()
    return {
        "value": _json_number(point[0]),
        "ci_low": _json_number(low),
        "ci_high": _json_number(high),
        "n_boot": n_boot,
        "seed": seed,
        "alpha": alpha,
        "unit": "patient (uid)" if groups is not None else "sample",
        "single_class_resamples": int(np.isnan(differences).sum()),
    }


def percentile_intervals(
    replicates: pd.DataFrame, alpha: float = 0.05
) -> dict[str, tuple[float, float]]:
    """Percentile interval ``(alpha/2, 1 − alpha/2)`` per column, ignoring NaN replicates."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    intervals = {}
    for name in replicates.columns:
        values = replicates[name].to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        if len(values) == 0:
            intervals[name] = (np.nan, np.nan)
        else:
            low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
            intervals[name] = (float(low), float(high))
    return intervals


def bootstrap_ci(
    labels: Sequence | np.ndarray,
    scores: Sequence | np.ndarray,
    groups: Sequence | np.ndarray | None,
    threshold: float,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap ``(low, high)`` per metric, resampling whole groups (patients).

    Replicates lacking a class are skipped for the metrics they leave undefined (AUC-type ones);
    count them with ``bootstrap_replicates(...)["roc_auc"].isna().sum()``.
    """
    replicates = bootstrap_replicates(labels, scores, groups, threshold, n_boot, seed)
    return percentile_intervals(replicates, alpha)


def per_study(frame: pd.DataFrame, score_columns: str | Sequence[str]) -> pd.DataFrame:
    """One row per study (``uid``): the mean of each score column over its views.

    Columns ``uid, label, n_images, <score columns>``, sorted by uid. Every image of a study must
    carry the study's label.
    """
    columns = [score_columns] if isinstance(score_columns, str) else list(score_columns)
    missing = {"uid", "label", *columns} - set(frame.columns)
    if missing:
        raise ValueError(f"per_study: frame lacks columns {sorted(missing)}")
    labels_per_study = frame.groupby("uid")["label"].nunique()
    mixed = labels_per_study.index[labels_per_study > 1]
    if len(mixed):
        raise ValueError(f"per_study: studies with conflicting labels: {list(mixed[:5])}")
    grouped = frame.groupby("uid", sort=True)
    out = grouped[columns].mean()
    out.insert(0, "n_images", grouped.size())
    out.insert(0, "label", grouped["label"].first())
    return out.reset_index()


def _json_number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _evaluate_level(
    frame: pd.DataFrame, score_column: str, threshold: float, n_boot: int, seed: int, alpha: float
) -> dict:
    labels, scores, uids = frame["label"], frame[score_column], frame["uid"]
    point = binary_metrics(labels, scores, threshold)
    replicates = bootstrap_replicates(labels, scores, uids, threshold, n_boot, seed)
    intervals = percentile_intervals(replicates, alpha)
    return {
        "n": point["n"],
        "n_positive": point["n_positive"],
        "n_patients": int(uids.nunique()),
        "metrics": {
            name: {
                "value": _json_number(point[name]),
                "ci_low": _json_number(intervals[name][0]),
                "ci_high": _json_number(intervals[name][1]),
            }
            for name in METRIC_NAMES
        },
        "confusion": confusion(labels, scores, threshold),
        "bootstrap": {
            "n_boot": n_boot,
            "seed": seed,
            "alpha": alpha,
            "unit": "patient (uid)",
            "single_class_resamples": int(replicates["roc_auc"].isna().sum()),
        },
    }


def evaluate_head(
    val: pd.DataFrame,
    test: pd.DataFrame,
    score_column: str,
    threshold_method: ThresholdMethod = "youden",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    fixed_threshold: float = 0.5,
) -> dict:
    """Test metrics with patient-bootstrap CIs at image and study level, JSON-ready.

    ``val`` and ``test`` have columns ``uid, label, <score_column>`` (one row per image). The
    threshold is chosen on ``val`` rows only and applied unchanged to test images and to test
    studies (mean probability over a study's views). NaN (undefined) becomes ``null``. The layout
    is ``chestclip.evaluation.schema.HEAD_RESULT_SCHEMA``.
    """
    for name, frame in (("val", val), ("test", test)):
        missing = {"uid", "label", score_column} - set(frame.columns)
        if missing:
            raise ValueError(f"evaluate_head: {name} frame lacks columns {sorted(missing)}")
    threshold = choose_threshold(val["label"], val[score_column], threshold_method, fixed_threshold)
    frames = {"image": test, "study": per_study(test, score_column)}
    return {
        "threshold": {
            "value": threshold,
            "method": threshold_method,
            "chosen_on": "validation" if threshold_method == "youden" else "none",
        },
        "levels": {
            level: _evaluate_level(frame, score_column, threshold, n_boot, seed, alpha)
            for level, frame in frames.items()
        },
    }


def metric_parts(metric: dict[str, Any]) -> tuple[str, str]:
    """A metrics.json entry as printed everywhere: ("0.829", "(0.768–0.883)"); the CI part is
    empty without an interval, and the value reads "n/a" where the metric is undefined."""
    if metric["value"] is None:
        return "n/a", ""
    if metric["ci_low"] is None:
        return f"{metric['value']:.3f}", ""
    return f"{metric['value']:.3f}", f"({metric['ci_low']:.3f}–{metric['ci_high']:.3f})"


def format_with_ci(metric: dict[str, Any]) -> str:
    """``0.829 (0.768–0.883)``, or just the value when there is no interval."""
    return " ".join(part for part in metric_parts(metric) if part)


def format_difference(difference: dict[str, Any]) -> str:
    """A paired difference as printed everywhere: ``−0.011 (−0.020 to −0.003)``."""
    if difference["value"] is None:
        return "n/a"
    value = f"{difference['value']:+.3f}".replace("-", "−")
    if difference["ci_low"] is None:
        return value
    low, high = (f"{difference[k]:+.3f}".replace("-", "−") for k in ("ci_low", "ci_high"))
    return f"{value} ({low} to {high})"
