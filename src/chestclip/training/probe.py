"""``chestclip probe``: MLP heads on frozen CLIP features — multimodal (image ⊕ text, the
paper's), image-only and text-only — trained with Lightning, best epoch chosen on validation AUC.

Writes ``RUN/heads/<name>/head.safetensors`` and ``head.json`` per head.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, TensorDataset

from chestclip.config import ProbeConfig, RunConfig
from chestclip.data import PreparedData
from chestclip.errors import ChestClipError
from chestclip.evaluation.features import FeatureCache
from chestclip.models import load_clip, resolve_clip_dir
from chestclip.models.heads import HEAD_INPUTS, MLPHead
from chestclip.training.classifier_module import ClassifierModule, fit_keep_best
from chestclip.utils.io import atomic_directory

HEADS_DIR = "heads"
FEATURE_CHOICES = {
    "both": ("multimodal",),
    "image": ("image",),
    "text": ("text",),
    "all": tuple(HEAD_INPUTS),
}


def head_name(kind: str, text_fields: Sequence[str] | None) -> str:
    """``multimodal``, or ``multimodal_indication`` for a head on other report sections."""
    return kind if kind == "image" or not text_fields else f"{kind}_{'+'.join(text_fields)}"


def head_features(
    cache: FeatureCache, kind: str, split: str, text_fields: Sequence[str] | None
) -> np.ndarray:
    """The head's input for every image of ``split``: [N, D] or [N, 2D] (image ⊕ text)."""
    parts = {"image": lambda: cache.images(split), "text": lambda: cache.texts(split, text_fields)}
    return np.concatenate([parts[p]() for p in HEAD_INPUTS[kind]], axis=1)


@dataclass(frozen=True)
class TrainedHead:
    name: str
    directory: Path
    best_epoch: int
    val_auc: float


def _loader(features: np.ndarray, labels: np.ndarray, batch_size: int, shuffle: bool) -> DataLoader:
    dataset = TensorDataset(torch.tensor(features, dtype=torch.float32), torch.tensor(labels))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)


def train_head(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    settings: ProbeConfig,
    directory: Path,
    seed: int,
    metadata: dict,
) -> TrainedHead:
    """Train one head; keep the epoch with the best validation AUC; save it as safetensors."""
    L.seed_everything(seed, verbose=False)
    head = MLPHead(train[0].shape[1], settings.hidden_sizes, settings.dropout)
    module = ClassifierModule(head, settings.optimizer, settings.lr, settings.weight_decay)
    with atomic_directory(directory) as tmp:
        best_epoch, val_auc = fit_keep_best(
            module,
            _loader(*train, settings.batch_size, True),
            _loader(*val, settings.batch_size, False),
            tmp,
            max_epochs=settings.epochs,
            accelerator="cpu",  # a few thousand feature vectors: the GPU would only add transfers
            devices=1,
            enable_progress_bar=False,
            log_every_n_steps=1,
        )
        save_file(
            {k: v.contiguous() for k, v in head.state_dict().items()}, tmp / "head.safetensors"
        )
        info = {
            **metadata,
            "in_dim": head.in_dim,
            "hidden_sizes": list(head.hidden_sizes),
            "dropout": head.dropout,
            "best_epoch": best_epoch,
            "val_auc": val_auc,
            "seed": seed,
        }
        (tmp / "head.json").write_text(json.dumps(info, indent=2) + "\n")
    return TrainedHead(name, directory, info["best_epoch"], info["val_auc"])


def load_head(directory: str | Path) -> tuple[MLPHead, dict]:
    """A saved head (eval mode) and its head.json."""
    directory = Path(directory)
    info = json.loads((directory / "head.json").read_text())
    head = MLPHead(info["in_dim"], info["hidden_sizes"], info["dropout"])
    head.load_state_dict(load_file(directory / "head.safetensors"))
    return head.eval(), info


def probe(
    run: str | Path,
    data_dir: str | Path,
    config: RunConfig,
    kinds: Sequence[str] = tuple(HEAD_INPUTS),
    text_fields: Sequence[str] | None = None,
) -> list[TrainedHead]:
    """Train heads of the given kinds (multimodal, image, text) on the run's frozen CLIP;
    ``text_fields`` other than the prepared ones give the leakage-ablation heads."""
    unknown = set(kinds) - set(HEAD_INPUTS)
    if unknown:
        raise ChestClipError(
            f"unknown head kind(s) {sorted(unknown)}: expected {list(HEAD_INPUTS)}"
        )
    run = Path(run)
    model, tokenizer = load_clip(run)
    data = PreparedData(data_dir)
    fields = tuple(text_fields) if text_fields else None
    cache = FeatureCache(run, model, tokenizer, data, resolve_clip_dir(run) / "model.safetensors")
    labels = {split: data.split_images(split)["label"].to_numpy() for split in ("train", "val")}
    prepared_fields = data.summary["config"]["text_fields"]
    # which projections the heads learnt from: a head that never saw a lateral refuses one
    views = data.split_images("train")["projection"].value_counts().sort_index()
    trained = []
    for kind in kinds:
        name = head_name(kind, fields)
        train_x, val_x = (head_features(cache, kind, split, fields) for split in ("train", "val"))
        metadata = {
            "name": name,
            "kind": kind,
            "inputs": list(HEAD_INPUTS[kind]),
            "text_fields": None if kind == "image" else list(fields or prepared_fields),
            "views": {str(view): int(count) for view, count in views.items()},
        }
        trained.append(
            train_head(
                name,
                (train_x, labels["train"]),
                (val_x, labels["val"]),
                config.probe,
                run / HEADS_DIR / name,
                config.seed,
                metadata,
            )
        )
    return trained
