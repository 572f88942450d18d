"""``chestclip evaluate``: every trained head (and the bag-of-words baseline) on the test split,
thresholds chosen on validation, bootstrap CIs over patients, per image and per study.

Writes ``RUN/eval/metrics.json`` (schema: ``chestclip.evaluation.schema``),
``RUN/eval/predictions.csv`` and the figures in ``RUN/plots/``, and fits the OOD guard
(``RUN/ood/``, ``chestclip.inference.trust``).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from chestclip import __version__
from chestclip.config import RunConfig
from chestclip.data import PreparedData
from chestclip.errors import ChestClipError
from chestclip.evaluation.baselines import (
    bag_of_words_baseline,
    baseline_scores,
    text_leaks_findings,
)
from chestclip.evaluation.features import FeatureCache, texts_for
from chestclip.evaluation.figures import (
    plot_confusion_matrices,
    plot_modality_bars,
    plot_reliability,
    plot_roc_curves,
)
from chestclip.evaluation.metrics import evaluate_head, reliability_bins
from chestclip.evaluation.schema import validate_metrics
from chestclip.inference.trust import fit_guard
from chestclip.models import load_clip, resolve_clip_dir
from chestclip.training.finetune import BASELINES_DIR
from chestclip.training.probe import HEADS_DIR, head_features, head_name, load_head, probe
from chestclip.utils.io import atomic_path, atomic_write_json

EVAL_SPLITS = ("val", "test")
BASELINE = "bag-of-words"
LEAK_WARNING = (
    "{head}: its text includes {fields}, written by the radiologist after reading the image; "
    "its score measures reading the report, not reading the X-ray"
)
BELOW_BASELINE_WARNING = (
    "RED FLAG: {head} (ROC-AUC {auc:.3f}) is below the bag-of-words baseline on the same text "
    "({baseline:.3f}): the CLIP features lose information a word count keeps"
)


def head_scores(cache: FeatureCache, directory: Path, split: str) -> np.ndarray:
    """P(diseased) per image of ``split`` from a saved head."""
    head, info = load_head(directory)
    fields = info["text_fields"] if info["kind"] != "image" else None
    features = head_features(cache, info["kind"], split, tuple(fields) if fields else None)
    with torch.no_grad():
        return head(torch.from_numpy(features).float()).softmax(-1)[:, 1].numpy()


def baseline_for(data: PreparedData, fields: Sequence[str], seed: int) -> dict[str, np.ndarray]:
    """Bag-of-words scores per split, trained on the training reports only."""
    texts = texts_for(data, tuple(fields))
    per_split = {
        s: texts.loc[data.split_images(s)["uid"]].tolist() for s in ("train", *EVAL_SPLITS)
    }
    labels = data.split_images("train")["label"].to_numpy()
    model = bag_of_words_baseline(per_split["train"], labels, seed=seed)
    return {s: baseline_scores(model, per_split[s]) for s in EVAL_SPLITS}


def score_frozen_heads(
    run: Path, data: PreparedData, frames: dict[str, pd.DataFrame]
) -> dict[str, dict]:
    """Add every RUN/heads/* head's P(diseased) to ``frames``; return each head's provenance."""
    head_dirs = sorted(p.parent for p in (run / HEADS_DIR).glob("*/head.json"))
    if not head_dirs:
        raise ChestClipError(
            f"{run}: no trained heads in {HEADS_DIR}/; run `chestclip probe` first"
        )
    model, tokenizer = load_clip(run)
    cache = FeatureCache(run, model, tokenizer, data, resolve_clip_dir(run) / "model.safetensors")
    heads = {}
    for directory in head_dirs:
        _, info = load_head(directory)
        for split in EVAL_SPLITS:
            frames[split][info["name"]] = head_scores(cache, directory, split)
        heads[info["name"]] = {
            "features": "+".join(info["inputs"]),
            "text_fields": info["text_fields"],
        }
    return heads


def score_finetuned(run: Path, frames: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """Add the end-to-end fine-tuned image baseline(s) in RUN/baselines/*/scores.csv."""
    heads = {}
    for path in sorted((run / BASELINES_DIR).glob("*/scores.csv")):
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
    for name, provenance in heads.items():
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
    warnings += below_baseline_warnings(results)
    document = {
        "schema_version": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "chestclip_version": __version__,
        "data": {
            **{key: data.summary.get(key) for key in ("source", "layout", "studies", "images")},
            "splits": data.summary["splits"],
            "skipped_by_reason": data.summary.get("skipped_by_reason", {}),
        },
        "heads": results,
        "warnings": warnings,
    }
    problems = validate_metrics(document)
    if problems:
        raise RuntimeError(f"metrics.json does not match its schema: {problems[:3]}")
    atomic_write_json(out / "eval/metrics.json", document)
    with atomic_path(out / "eval/predictions.csv") as tmp:
        pd.concat([frames[s] for s in EVAL_SPLITS]).to_csv(tmp, index=False)
    write_figures(out / "plots", frames["test"], results)
    return document


def evaluate(
    run: str | Path,
    data_dir: str | Path,
    config: RunConfig,
    threshold_method: str = "youden",
    ablation_fields: Sequence[Sequence[str]] = (("indication",),),
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Evaluate every head of a run — frozen-CLIP heads (training the leakage-ablation heads on
    ``ablation_fields`` first when missing), the fine-tuned image baseline when present, and a
    bag-of-words baseline for every text the heads read."""
    run = Path(run)
    data = PreparedData(data_dir)
    for fields in ablation_fields:
        if not (run / HEADS_DIR / head_name("multimodal", fields)).is_dir():
            probe(run, data_dir, config, kinds=("multimodal", "text"), text_fields=fields)
    frames = empty_frames(data)
    heads = score_frozen_heads(run, data, frames) | score_finetuned(run, frames)
    text_fields = [h["text_fields"] for h in heads.values() if h["text_fields"]]
    heads |= score_text_baselines(data, frames, text_fields, config.seed)
    document = write_evaluation(run, data, frames, heads, threshold_method, n_boot, config.seed)
    fit_guard(run, data_dir)  # validation is read here: the OOD guard's thresholds come from it
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


def below_baseline_warnings(heads: dict[str, dict[str, Any]]) -> list[str]:
    """A text-using head whose test AUC is below the bag-of-words on the same fields."""
    found = []
    for name, result in heads.items():
        fields = result["text_fields"]
        if not fields or name.startswith(BASELINE):
            continue
        baseline = heads.get(f"{BASELINE}_{'+'.join(fields)}")
        auc = result["levels"]["image"]["metrics"]["roc_auc"]["value"]
        reference = baseline["levels"]["image"]["metrics"]["roc_auc"]["value"] if baseline else None
        if auc is not None and reference is not None and auc < reference:
            found.append(BELOW_BASELINE_WARNING.format(head=name, auc=auc, baseline=reference))
    return found


def write_figures(plots: Path, test: pd.DataFrame, heads: dict[str, dict[str, Any]]) -> None:
    """ROC curves, confusion matrices, modality bars (the paper's Fig. 7) and reliability."""
    labels = test["label"].to_numpy()
    plot_roc_curves({n: (labels, test[n].to_numpy()) for n in heads}, plots / "roc.png")
    plot_confusion_matrices(
        {n: r["levels"]["image"]["confusion"] for n, r in heads.items()}, plots / "confusion.png"
    )
    aucs = {}
    for name, result in heads.items():
        metric = result["levels"]["image"]["metrics"]["roc_auc"]
        aucs[name] = (metric["value"], metric["ci_low"], metric["ci_high"])
    plot_modality_bars(aucs, plots / "modality_auc.png")
    plot_reliability(
        {n: reliability_bins(labels, test[n].to_numpy()) for n in heads}, plots / "reliability.png"
    )
