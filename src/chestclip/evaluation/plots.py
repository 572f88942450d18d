"""Figures written by the stages (matplotlib, headless, saved atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs on servers and in CI
import matplotlib.pyplot as plt
import pandas as pd

from chestclip.utils.io import atomic_path


def save_figure(figure: plt.Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(
            tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight"
        )
    plt.close(figure)


def plot_clip_history(history: pd.DataFrame, path: str | Path) -> None:
    """Train/val contrastive loss and validation image→text Recall@K per epoch."""
    figure, (loss_ax, recall_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for column, label in (("train_loss", "train"), ("val_loss", "validation")):
        if column in history:
            loss_ax.plot(history["epoch"], history[column], marker="o", label=label)
    loss_ax.set(xlabel="epoch", ylabel="InfoNCE loss", title="CLIP loss")
    loss_ax.legend()
    for column in [c for c in history.columns if c.startswith("val_recall@")]:
        recall_ax.plot(
            history["epoch"], history[column], marker="o", label=column.removeprefix("val_")
        )
    if "val_chance@5" in history:
        recall_ax.plot(
            history["epoch"],
            history["val_chance@5"],
            linestyle="--",
            color="grey",
            label="chance@5",
        )
    recall_ax.set(
        xlabel="epoch", ylabel="recall", ylim=(0, 1), title="validation image→text retrieval"
    )
    recall_ax.legend()
    save_figure(figure, path)
