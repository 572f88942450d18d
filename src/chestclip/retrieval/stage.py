"""``chestclip zeroshot`` and ``chestclip retrieve``: the trained CLIP without any head, on
``device`` (default: CUDA when available).

Writes ``RUN/zeroshot/metrics.json`` + ``RUN/plots/zeroshot_auc.png`` and
``RUN/retrieval/metrics.json``, ``RUN/retrieval/index-<split>/`` (reused by ad-hoc queries and
report drafts) + ``RUN/plots/retrieval_recall.png`` (paths: ``RunLayout``). Query images may be
PNG, JPEG or DICOM (read as ``chestclip predict`` reads them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from chestclip.data import PreparedData
from chestclip.data.readers import read_xray_for_model
from chestclip.data.text import clean_text
from chestclip.evaluation.features import FeatureCache, encode_images, encode_texts
from chestclip.evaluation.figures import plot_modality_bars, plot_recall_vs_chance
from chestclip.models import load_clip
from chestclip.retrieval.index import EmbeddingIndex, build_index, nearest_reports
from chestclip.retrieval.metrics import evaluate_retrieval
from chestclip.retrieval.prompts import load_prompts
from chestclip.retrieval.zeroshot import evaluate_zero_shot
from chestclip.training.pretrain import read_training_data
from chestclip.utils.device import resolve_device
from chestclip.utils.io import atomic_write_json
from chestclip.utils.run_layout import RunLayout


def run_zero_shot(
    run: str | Path,
    data_dir: str | Path,
    prompts: str | Path | None = None,
    split: str = "test",
    n_boot: int = 1000,
    seed: int = 0,
    device: str | torch.device | None = None,
    precision: str = "32-true",
) -> dict[str, Any]:
    """Zero-shot AUC with CIs per prompt task on ``split``."""
    layout = RunLayout(run)
    model, tokenizer = load_clip(layout.root, resolve_device(device))
    data = PreparedData(data_dir)
    cache = FeatureCache(layout.root, model, tokenizer, data, precision)
    result = evaluate_zero_shot(
        model, tokenizer, data, load_prompts(prompts), split, cache.images(split), n_boot, seed
    )
    atomic_write_json(layout.zeroshot_metrics, result)
    aucs = {
        name: (t["roc_auc"]["value"], t["roc_auc"]["ci_low"], t["roc_auc"]["ci_high"])
        for name, t in result["tasks"].items()
        if t["status"] == "ok"
    }
    plot_modality_bars(aucs, layout.plot("zeroshot_auc"), metric="zero-shot ROC-AUC")
    return result


def run_retrieval(
    run: str | Path,
    data_dir: str | Path,
    split: str = "test",
    device: str | torch.device | None = None,
    precision: str = "32-true",
) -> dict[str, Any]:
    """Recall@1/5/10 and median rank both ways on ``split``; saves the split's and the training
    split's embedding indexes (the latter for nearest-report drafts)."""
    layout = RunLayout(run)
    model, tokenizer = load_clip(layout.root, resolve_device(device))
    data = PreparedData(data_dir)
    for name in dict.fromkeys((split, "train")):
        build_index(model, tokenizer, data, name, precision).save(layout.retrieval_index(name))
    metrics = evaluate_retrieval(EmbeddingIndex.load(layout.retrieval_index(split)))
    metrics = {"split": split, **metrics}
    atomic_write_json(layout.retrieval_metrics, metrics)
    directions = {d: metrics[d] for d in ("image_to_report", "report_to_image")}
    plot_recall_vs_chance(directions, layout.plot("retrieval_recall"))
    return metrics


def image_embedding(run: Path, model, image: str | Path) -> np.ndarray:
    """[D]: an X-ray file (PNG, JPEG or DICOM) prepared the way the model's training images were."""
    resize = read_training_data(run)["resize"]
    pixels = read_xray_for_model(image, model.config.image_size, resize)
    return encode_images(model, pixels[None])[0]


def draft_reports(
    run: str | Path, image: str | Path, k: int = 3, device: str | torch.device | None = None
) -> pd.DataFrame:
    """Nearest-report drafts for a new image: the ``k`` most similar distinct TRAINING reports
    (findings, impression) with their similarities, from the saved training-split index."""
    layout = RunLayout(run)
    model, _ = load_clip(layout.root, resolve_device(device))
    index = EmbeddingIndex.load(layout.retrieval_index("train"))
    return nearest_reports(index, image_embedding(layout.root, model, image), k)


def query(
    run: str | Path,
    split: str = "test",
    image: str | Path | None = None,
    text: str | None = None,
    k: int = 5,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Ad-hoc search in a saved index: an image file (PNG, JPEG or DICOM) → top-k studies
    (reports), or a text → top-k images. Run ``run_retrieval`` first to build the index."""
    layout = RunLayout(run)
    model, tokenizer = load_clip(layout.root, resolve_device(device))
    index = EmbeddingIndex.load(layout.retrieval_index(split))
    if image is not None:
        return index.search_by_image(image_embedding(layout.root, model, image), k)
    if text is None:
        raise ValueError("query needs an image or a text")
    cleaned = clean_text(text, index.meta["clean_mode"])
    return index.search_by_text(encode_texts(model, tokenizer, [cleaned])[0], k)
