"""The sweep's tables and figure: one leaderboard row per trial (validation metrics only, plus
which trial was chosen and whose test split was read), the choice, and metric vs parameters."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from chestclip.evaluation.plots import save_figure
from chestclip.models.heads import HEAD_INPUTS
from chestclip.sweep.space import Range, SweepSpec, choice_label
from chestclip.utils.io import atomic_path
from chestclip.utils.run_layout import RunLayout

METRIC_COLUMNS = (*(f"probe_val_auc_{head}" for head in HEAD_INPUTS), "clip_val_loss")


def trial_dir(out: Path, number: int) -> Path:
    return RunLayout(out).trial(number)


def trial_state(trial: FrozenTrial) -> str:
    """complete, failed (an error: recorded, not retried), interrupted (killed: retried),
    running or waiting."""
    if trial.state == TrialState.FAIL:
        return "failed" if "error" in trial.user_attrs else "interrupted"
    return trial.state.name.lower()


def leaderboard(
    trials: list[FrozenTrial],
    spec: SweepSpec,
    out: Path,
    chosen: int | None = None,
    test_read: int | None = None,
) -> pd.DataFrame:
    """One row per trial started: its parameters, validation metrics, state, error and time;
    ``chosen`` marks the selected trial, ``test_read`` the one whose test split was evaluated."""
    retries = {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}
    rows = []
    for trial in trials:
        state = trial_state(trial)
        if state == "waiting":
            continue
        error = trial.user_attrs.get("error", "")
        if state == "interrupted":
            retry = retries.get(trial.number)
            error = "interrupted" + (f"; retried as trial {retry}" if retry is not None else "")
        run = trial_dir(out, trial.number)
        metrics = trial.user_attrs.get("metrics", {})
        rows.append(
            {
                "trial": trial.number,
                "state": state,
                "chosen": trial.number == chosen,
                "test_split_read": trial.number == test_read,
                **{key: trial.params.get(key) for key in spec.space},
                "objective": trial.value,
                **{column: metrics.get(column) for column in METRIC_COLUMNS},
                "seconds": trial.user_attrs.get("seconds"),
                "gpu": trial.user_attrs.get("gpu"),
                "error": error,
                "run": str(run.relative_to(out)) if run.is_dir() else "",
            }
        )
    columns = [
        "trial", "state", "chosen", "test_split_read", *spec.space, "objective",
        *METRIC_COLUMNS, "seconds", "gpu", "error", "run",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def choose_best(frame: pd.DataFrame, direction: str) -> int | None:
    """The complete trial with the best validation objective (ties: the earliest); None if none
    completed."""
    done = frame[frame["state"] == "complete"]
    if done.empty:
        return None
    ranked = done.sort_values(["objective", "trial"], ascending=[direction == "minimize", True])
    return int(ranked["trial"].iloc[0])


def write_leaderboard(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def plot_metric_vs_params(frame: pd.DataFrame, spec: SweepSpec, path: Path) -> None:
    """One panel per searched key: the validation objective of every complete trial, the chosen
    one starred; numbers on a (log, for ranges spanning a decade or more) axis, choices as ticks."""
    done = frame[frame["state"] == "complete"]
    figure, axes = plt.subplots(
        1, len(spec.space), figsize=(3.6 * len(spec.space), 3.4), sharey=True, squeeze=False
    )
    for ax, (key, entry) in zip(axes[0], spec.space.items(), strict=True):
        numeric = isinstance(entry, Range) or all(
            isinstance(c, int | float) and not isinstance(c, bool) for c in entry
        )
        if numeric:
            x = done[key].astype(float)
            ends = (entry.low, entry.high) if isinstance(entry, Range) else (min(entry), max(entry))
            if ends[0] > 0 and ends[1] / ends[0] >= 10:
                ax.set_xscale("log")
        else:
            labels = [str(choice_label(c)) for c in entry]
            x = done[key].map(lambda value, labels=labels: labels.index(str(value)))
            ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right")
            ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.scatter(x, done["objective"], color="tab:blue", alpha=0.8)
        chosen = done["chosen"].to_numpy(dtype=bool)
        ax.scatter(x[chosen], done["objective"][chosen], marker="*", s=220, color="tab:red")
        ax.set_xlabel(key)
    axes[0][0].set_ylabel(f"{spec.objective} (validation)")
    figure.suptitle(f"{spec.search} search: {len(done)} of {len(frame)} trials complete; ★ chosen")
    save_figure(figure, path)
