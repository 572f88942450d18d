"""``chestclip evaluate``: every trained head (and the bag-of-words baseline) on the test split,
thresholds chosen on validation, bootstrap CIs over patients, per image and per study. It only
scores: heads come from ``chestclip probe``, and a stale one (trained on other CLIP weights or
another prepared dataset) is refused.

Writes ``RUN/eval/metrics.json`` (schema: ``chestclip.evaluation.schema``),
``RUN/eval/predictions.csv`` and the figures in ``RUN/plots/`` (for multi-label heads also
``RUN/eval/findings.json``: ``chestclip.evaluation.findings``), and fits the OOD guard
(``RUN/ood/``, ``chestclip.inference.trust``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from chestclip.config import RunConfig
from chestclip.data import PreparedData
from chestclip.errors import ChestClipError
from chestclip.evaluation.baselines import (
    LEAK_WARNING,
    bag_of_words_baseline,
    baseline_scores,
    text_leaks_findings,
)
from chestclip.evaluation.comparisons import BASELINE, compare_heads
from chestclip.evaluation.features import FeatureCache, texts_for
from chestclip.evaluation.figures import (
    plot_confusion_matrices,
    plot_modality_bars,
    plot_reliability,
    plot_roc_curves,
)
from chestclip.evaluation.findings import evaluate_finding_heads
from chestclip.evaluation.metrics import evaluate_head, format_difference, reliability_bins
from chestclip.evaluation.schema import SCHEMA_VERSION, document_header, validate_metrics
from chestclip.inference.trust import fit_guard
from chestclip.models import load_clip
from chestclip.training.probe import head_logits, load_head
from chestclip.utils.device import resolve_device
from chestclip.utils.io import atomic_path, atomic_write_json
from chestclip.utils.run_layout import BASELINE_FILE, RunLayout

EVAL_SPLITS = ("val", "test")
BELOW_BASELINE_WARNING = (
    "RED FLAG: {head} is below the bag-of-words baseline on the same text: ROC-AUC difference "
    "{difference} per image, paired bootstrap over patients, 95% CI below 0: the CLIP features "
    "lose information a word count keeps"
)


def head_scores(
    cache: FeatureCache, head: torch.nn.Module, info: dict[str, Any], split: str
) -> np.ndarray:
    """P(diseased) per image of ``split`` from a loaded head, on the cache's model's device."""
    return head_logits(cache, head, info, split).softmax(-1)[:, 1].numpy()


def baseline_for(data: PreparedData, fields: Sequence[str], seed: int) -> dict[str, np.ndarray]:
    """Bag-of-words scores per image of each evaluated split, trained on the training reports
    only, one row per study (its views share the text), cross-validated by patient."""
    texts = texts_for(data, tuple(fields))
    train = data.split_images("train").drop_duplicates("uid")
    model = bag_of_words_baseline(
        texts.loc[train["uid"]].tolist(), train["label"].to_numpy(), seed, groups=train["uid"]
    )
    return {
        s: baseline_scores(model, texts.loc[data.split_images(s)["uid"]].tolist())
        for s in EVAL_SPLITS
    }


def score_frozen_heads(
    layout: RunLayout,
    data: PreparedData,
    frames: dict[str, pd.DataFrame],
    device: torch.device,
    precision: str,
) -> dict[str, dict]:
    """Add every RUN/heads/* head's P(diseased) to ``frames``; return each head's provenance.
    Every head is checked against the run's CLIP and ``data`` before any is scored."""
    head_dirs = layout.head_dirs()
    if not head_dirs:
        raise ChestClipError(
            f"{layout.root}: no trained heads in {layout.heads.name}/; run `chestclip probe` first"
        )
    loaded = [load_head(directory) for directory in head_dirs]
    for directory, (_, info) in zip(head_dirs, loaded, strict=True):
        layout.check_head(directory, info, data.root)
    model, tokenizer = load_clip(layout.root, device)
    cache = FeatureCache(layout.root, model, tokenizer, data, precision)
    heads = {}
    for head, info in loaded:
        for split in EVAL_SPLITS:
            frames[split][info["name"]] = head_scores(cache, head, info, split)
        heads[info["name"]] = {
            "features": "+".join(info["inputs"]),
            "text_fields": info["text_fields"],
        }
    return heads


def score_finetuned(
    layout: RunLayout, data: PreparedData, frames: dict[str, pd.DataFrame]
) -> dict[str, dict]:
    """Add the end-to-end fine-tuned image baseline(s) in RUN/baselines/*/scores.csv, each
    checked to be trained on ``data``."""
    heads = {}
    for path in sorted(layout.baselines.glob("*/scores.csv")):
        info_file = path.parent / BASELINE_FILE
        info = json.loads(info_file.read_text()) if info_file.is_file() else {}
        layout.check_baseline(path.parent, info, data.root)
        scores = pd.read_csv(path, dtype={"image_id": str}).set_index("image_id")["score"]
        name = path.parent.name
        for split in EVAL_SPLITS:
            frames[split][name] = frames[split]["image_id"].map(scores)
        heads[name] = {"features": "image (fine-tuned)", "text_fields": None}
    return heads


def score_text_baselines(
    data: PreparedData,
    frames: dict[str, pd.DataFrame],
    fields_list: Sequence[Sequence[str]],
    seed: int,
) -> dict[str, dict]:
    """Add a bag-of-words baseline per distinct list of text fields."""
    heads = {}
    for fields in dict.fromkeys(tuple(f) for f in fields_list):
        name = f"{BASELINE}_{'+'.join(fields)}"
        for split, scores in baseline_for(data, fields, seed).items():
            frames[split][name] = scores
        heads[name] = {"features": "tfidf", "text_fields": list(fields)}
    return heads


def empty_frames(data: PreparedData) -> dict[str, pd.DataFrame]:
    return {
        s: data.split_images(s)[["image_id", "uid", "split", "label"]].copy() for s in EVAL_SPLITS
    }


def write_evaluation(
    out: Path,
    data: PreparedData,
    frames: dict[str, pd.DataFrame],
    heads: dict[str, dict],
    threshold_method: str,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """Metrics with CIs per head (thresholds from validation), warnings, and every output:
    ``out/eval/metrics.json``, ``out/eval/predictions.csv``, ``out/plots/*.png``."""
    results: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    bar = tqdm(heads.items(), desc="bootstrap CIs", unit="head", leave=False, disable=None)
    for name, provenance in bar:
        missing = frames["test"][name].isna().sum() + frames["val"][name].isna().sum()
        if missing:
            raise ChestClipError(
                f"{name}: no score for {missing} val/test images (scored on other data?)"
            )
        result = evaluate_head(
            frames["val"][["uid", "label", name]],
            frames["test"][["uid", "label", name]],
            name,
            threshold_method=threshold_method,
            n_boot=n_boot,
            seed=seed,
        )
        fields = provenance["text_fields"]
        leaks = bool(fields) and text_leaks_findings(fields)
        results[name] = {**result, **provenance, "text_leaks_findings": leaks}
        if leaks:
            warnings.append(LEAK_WARNING.format(head=name, fields="+".join(fields)))
    comparisons = compare_heads(frames["test"], heads, n_boot, seed)
    warnings += below_baseline_warnings(comparisons)
    document = {
        **document_header(SCHEMA_VERSION, data.summary),
        "heads": results,
        "comparisons": comparisons,
        "warnings": warnings,
    }
    problems = validate_metrics(document)
    if problems:
        raise RuntimeError(f"metrics.json does not match its schema: {problems[:3]}")
    layout = RunLayout(out)
    atomic_write_json(layout.metrics, document)
    with atomic_path(layout.predictions) as tmp:
        pd.concat([frames[s] for s in EVAL_SPLITS]).to_csv(tmp, index=False)
    write_figures(layout, frames["test"], results)
    return document


def evaluate(
    run: str | Path,
    data_dir: str | Path,
    config: RunConfig,
    threshold_method: str = "youden",
    n_boot: int = 1000,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Evaluate every head of a run — the frozen-CLIP heads ``chestclip probe`` trained (the
    leakage-ablation ones included), the fine-tuned image baseline when present, and a
    bag-of-words baseline for every text the heads read. Features are computed on ``device``
    (default: CUDA when available). Trains nothing: a missing or stale head is an error."""
    layout = RunLayout(run)
    data = PreparedData(data_dir)
    frames = empty_frames(data)
    heads = score_frozen_heads(
        layout, data, frames, resolve_device(device), config.pretrain.precision
    ) | score_finetuned(layout, data, frames)
    text_fields = [h["text_fields"] for h in heads.values() if h["text_fields"]]
    heads |= score_text_baselines(data, frames, text_fields, config.seed)
    document = write_evaluation(
        layout.root, data, frames, heads, threshold_method, n_boot, config.seed
    )
    # the multi-label heads, when probe trained any: RUN/eval/findings.json
    evaluate_finding_heads(
        layout,
        data,
        threshold_method,
        n_boot,
        config.seed,
        resolve_device(device),
        config.pretrain.precision,
    )
    fit_guard(layout.root, data_dir, device)  # the OOD guard's thresholds come from validation
    return document


def evaluate_text_baselines(
    data_dir: str | Path,
    out: str | Path,
    fields_list: Sequence[Sequence[str]],
    threshold_method: str = "youden",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The bag-of-words baseline on each list of text fields through the same evaluation code:
    runs on reports alone (a dataset prepared with --no-images), e.g. the leakage ablation
    indication vs indication+findings on the real IU reports."""
    data = PreparedData(data_dir)
    frames = empty_frames(data)
    heads = score_text_baselines(data, frames, fields_list, seed)
    return write_evaluation(Path(out), data, frames, heads, threshold_method, n_boot, seed)


def validation_thresholds(run: str | Path) -> dict[str, float]:
    """Each head's decision threshold, chosen on validation data by ``chestclip evaluate``
    (empty before the run is evaluated)."""
    path = RunLayout(run).metrics
    if not path.is_file():
        return {}
    heads = json.loads(path.read_text())["heads"]
    return {name: result["threshold"]["value"] for name, result in heads.items()}


def below_baseline_warnings(comparisons: list[dict[str, Any]]) -> list[str]:
    """A text-using head below the bag-of-words on the same fields: only when the paired
    bootstrap interval of the per-image ROC-AUC difference lies wholly below 0 (a lower point
    estimate within the noise is no finding)."""
    found = []
    for comparison in comparisons:
        difference = comparison["levels"]["image"]
        if (
            comparison["reference"].startswith(BASELINE)
            and difference["ci_high"] is not None
            and difference["ci_high"] < 0
        ):
            found.append(
                BELOW_BASELINE_WARNING.format(
                    head=comparison["head"], difference=format_difference(difference)
                )
            )
    return found


def write_figures(layout: RunLayout, test: pd.DataFrame, heads: dict[str, dict[str, Any]]) -> None:
    """ROC curves, confusion matrices, modality bars (the paper's Fig. 7) and reliability."""
    labels = test["label"].to_numpy()
    plot_roc_curves({n: (labels, test[n].to_numpy()) for n in heads}, layout.plot("roc"))
    plot_confusion_matrices(
        {n: r["levels"]["image"]["confusion"] for n, r in heads.items()}, layout.plot("confusion")
    )
    aucs = {}
    for name, result in heads.items():
        metric = result["levels"]["image"]["metrics"]["roc_auc"]
        aucs[name] = (metric["value"], metric["ci_low"], metric["ci_high"])
    plot_modality_bars(aucs, layout.plot("modality_auc"))
    plot_reliability(
        {n: reliability_bins(labels, test[n].to_numpy()) for n in heads}, layout.plot("reliability")
    )
