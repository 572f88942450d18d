"""Zero-shot classification with a trained ChestCLIP, the CheXzero way.

Each task has a positive and a negative prompt ensemble; an image scores
``P(positive) = softmax(logit_scale · [sim(image, positive), sim(image, negative)])[0]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from chestclip.data import PreparedData
from chestclip.data.text import CleanMode
from chestclip.evaluation.features import encode_images, encode_texts
from chestclip.evaluation.metrics import binary_metrics, bootstrap_replicates, percentile_intervals
from chestclip.models import ChestCLIP
from chestclip.retrieval.prompts import PromptSet, PromptTask

THRESHOLD = 0.5  # the AUC-type metrics reported here do not depend on it
REPORTED_METRICS = ("roc_auc", "pr_auc")


def ensemble_embedding(embeddings: np.ndarray) -> np.ndarray:
    """Prompt embeddings [P, D] → their mean, re-normalised to unit length [D]."""
    mean = torch.as_tensor(np.asarray(embeddings, dtype=np.float32)).mean(dim=0)
    return F.normalize(mean, dim=-1).numpy()


def pair_probability(
    image_embeddings: np.ndarray, positive: np.ndarray, negative: np.ndarray, logit_scale: float
) -> np.ndarray:
    """P(positive) [N] for unit-norm images [N, D] against the two class embeddings [D]."""
    images = torch.as_tensor(np.asarray(image_embeddings, dtype=np.float32))
    classes = torch.as_tensor(np.stack([positive, negative]).astype(np.float32))  # [2, D]
    logits = logit_scale * images @ classes.T  # [N, 2]
    return logits.softmax(dim=-1)[:, 0].numpy().astype(np.float64)


def prompt_embeddings(
    model: ChestCLIP, tokenizer: PreTrainedTokenizerBase, task: PromptTask, clean_mode: CleanMode
) -> tuple[np.ndarray, np.ndarray]:
    """The (positive, negative) ensemble embeddings [D], [D] of ``task``'s cleaned prompts."""
    positive, negative = task.cleaned(clean_mode)
    return (
        ensemble_embedding(encode_texts(model, tokenizer, positive)),
        ensemble_embedding(encode_texts(model, tokenizer, negative)),
    )


def zero_shot_scores(
    model: ChestCLIP,
    tokenizer: PreTrainedTokenizerBase,
    image_embeddings: np.ndarray,
    task: PromptTask,
    clean_mode: CleanMode,
) -> np.ndarray:
    """P(positive) [N] for image embeddings [N, D] of ``model`` (put it in eval mode first).

    ``clean_mode`` is the prepared data's (``data.summary["config"]["clean"]``), so the prompts
    read like the reports the model was trained on.
    """
    positive, negative = prompt_embeddings(model, tokenizer, task, clean_mode)
    return pair_probability(image_embeddings, positive, negative, float(model.logit_scale))


def mesh_headings(mesh: str) -> set[str]:
    """Case-folded headings of a ';'-joined MeSH string: ``"Opacity/lung/base;Nodule"`` →
    ``{"opacity", "nodule"}``."""
    return {term.split("/")[0].strip().casefold() for term in mesh.split(";") if term.strip()}


def task_labels(frame: pd.DataFrame, task: PromptTask) -> np.ndarray:
    """1 (positive) / 0 (negative) per row [N] of a studies or images frame.

    ``label: abnormal`` reads the ``label`` column; ``mesh_any`` the ``mesh`` column (images
    frames carry it once merged with their studies, see :func:`split_table`).
    """
    column = "label" if task.label == "abnormal" else "mesh"
    if column not in frame.columns:
        raise ValueError(f"task {task.name!r} needs a {column!r} column in the frame")
    if task.label == "abnormal":
        return frame["label"].to_numpy(dtype=np.int64)
    wanted = {heading.casefold() for heading in task.mesh_any or ()}
    return np.array([bool(mesh_headings(m) & wanted) for m in frame["mesh"]], dtype=np.int64)


def split_table(data: PreparedData, split: str) -> pd.DataFrame:
    """The images of ``split`` (``data.split_images`` order) with their study's MeSH terms."""
    images = data.split_images(split)
    if images.empty:
        raise ValueError(f"{data.root}: no images in split {split!r}")
    return images.merge(data.studies[["uid", "mesh"]], on="uid", how="left", validate="m:1")


def zero_shot_auc(
    labels: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """ROC-AUC and PR-AUC with patient-bootstrap CIs, or ``status: skipped`` on one class."""
    labels = np.asarray(labels)
    counts = {"n": len(labels), "n_positive": int(labels.sum())}
    if counts["n_positive"] in (0, len(labels)):
        only = "positive" if counts["n_positive"] else "negative"
        return {"status": "skipped", "reason": f"only {only} images in the split", **counts}
    point = binary_metrics(labels, scores, THRESHOLD)
    replicates = bootstrap_replicates(labels, scores, groups, THRESHOLD, n_boot, seed)
    intervals = percentile_intervals(replicates[list(REPORTED_METRICS)], alpha)

    def number(value: float) -> float | None:
        return None if np.isnan(value) else float(value)

    return {
        "status": "ok",
        **counts,
        "n_patients": int(pd.Series(groups).nunique()),
        **{
            name: {
                "value": number(point[name]),
                "ci_low": number(intervals[name][0]),
                "ci_high": number(intervals[name][1]),
            }
            for name in REPORTED_METRICS
        },
        "single_class_resamples": int(replicates["roc_auc"].isna().sum()),
    }


def evaluate_zero_shot(
    model: ChestCLIP,
    tokenizer: PreTrainedTokenizerBase,
    data: PreparedData,
    prompts: PromptSet,
    split: str = "test",
    image_embeddings: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Per-image zero-shot AUCs of every task on ``split``, CIs resampling patients. JSON-ready.

    ``image_embeddings`` [N, D] in ``data.split_images(split)`` order (e.g. from
    ``FeatureCache.images``) skips re-encoding. A task whose labels hold one class in the split
    is reported with ``status: skipped`` and the reason.
    """
    table = split_table(data, split)
    if image_embeddings is None:
        image_embeddings = encode_images(model, data.array[table["row"].to_numpy()])
    if len(image_embeddings) != len(table):
        raise ValueError(
            f"image_embeddings has {len(image_embeddings)} rows for {len(table)} {split} images"
        )
    clean_mode = data.summary["config"]["clean"]
    tasks = {}
    for name, task in prompts.tasks.items():
        scores = zero_shot_scores(model, tokenizer, image_embeddings, task, clean_mode)
        labels = task_labels(table, task)
        positive, negative = task.cleaned(clean_mode)
        tasks[name] = {
            **zero_shot_auc(labels, scores, table["uid"].to_numpy(), n_boot, seed, alpha),
            "prompts": {"positive": positive, "negative": negative},
        }
    return {
        "split": split,
        "level": "image",
        "clean_mode": clean_mode,
        "logit_scale": float(model.logit_scale),
        "bootstrap": {"n_boot": n_boot, "seed": seed, "alpha": alpha, "unit": "patient (uid)"},
        "tasks": tasks,
    }
