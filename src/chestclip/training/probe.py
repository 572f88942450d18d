"""``chestclip probe``: MLP heads on frozen CLIP features — multimodal (image ⊕ text, the
paper's), image-only and text-only, and the leakage-ablation heads on other report sections
(``probe.ablation``: indication only) — trained with Lightning, best epoch chosen on validation
AUC.

Writes ``RUN/heads/<name>/head.safetensors`` and ``head.json`` per head; ``head.json`` records the
fingerprint of the features it was trained on (``RunLayout.features_fingerprint``), so a head of
an older CLIP is refused, never scored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
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
from chestclip.models import load_clip
from chestclip.models.heads import HEAD_INPUTS, MLPHead, MultiLabelHead
from chestclip.training.classifier_module import ClassifierModule, fit_keep_best
from chestclip.utils.device import model_device, resolve_device, trainer_device
from chestclip.utils.io import atomic_directory
from chestclip.utils.run_layout import HEAD_FILE, RunLayout

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


def head_logits(cache: FeatureCache, head: torch.nn.Module, info: dict, split: str) -> torch.Tensor:
    """A loaded head's logits [N, classes or findings] (on the CPU) for every image of
    ``split``, computed on the device of the cache's model."""
    fields = info["text_fields"] if info["kind"] != "image" else None
    features = head_features(cache, info["kind"], split, tuple(fields) if fields else None)
    device = model_device(cache.model)
    with torch.no_grad():
        return head.to(device)(torch.from_numpy(features).float().to(device)).cpu()


@dataclass(frozen=True)
class TrainedHead:
    name: str
    directory: Path
    best_epoch: int
    val_auc: float


def _loader(arrays: Sequence[np.ndarray], batch_size: int, shuffle: bool) -> DataLoader:
    """A loader of (features, targets[, mask]) rows; floating arrays become float32."""
    tensors = [
        torch.tensor(a, dtype=torch.float32) if a.dtype.kind == "f" else torch.tensor(a)
        for a in arrays
    ]
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle)


def train_head(
    build: Callable[[int], ClassifierModule],
    train: Sequence[np.ndarray],
    val: Sequence[np.ndarray],
    settings: ProbeConfig,
    directory: Path,
    seed: int,
    metadata: dict,
    device: torch.device | None = None,
) -> TrainedHead:
    """Train the module ``build(in_dim)`` makes (its classifier an ``MLPHead``, weights drawn
    after seeding) on (features, targets[, mask]) arrays on ``device``; keep the epoch with the
    best validation AUC; save the head as safetensors with ``metadata`` in ``directory``."""
    L.seed_everything(seed, verbose=False)
    module = build(train[0].shape[1])
    head = module.classifier
    with atomic_directory(directory) as tmp:
        best_epoch, val_auc = fit_keep_best(
            module,
            _loader(train, settings.batch_size, True),
            _loader(val, settings.batch_size, False),
            tmp,
            max_epochs=settings.epochs,
            log_every_n_steps=1,
            **trainer_device(device or torch.device("cpu")),
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
        (tmp / HEAD_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return TrainedHead(info["name"], directory, info["best_epoch"], info["val_auc"])


def load_head(directory: str | Path) -> tuple[MLPHead, dict]:
    """A saved head (eval mode) and its head.json: a ``MultiLabelHead`` where head.json lists
    findings, else the binary ``MLPHead``."""
    directory = Path(directory)
    info = json.loads((directory / HEAD_FILE).read_text())
    if info.get("findings"):
        head = MultiLabelHead(
            info["in_dim"], info["findings"], info["hidden_sizes"], info["dropout"]
        )
    else:
        head = MLPHead(info["in_dim"], info["hidden_sizes"], info["dropout"])
    head.load_state_dict(load_file(directory / "head.safetensors"))
    return head.eval(), info


def head_plan(
    kinds: Sequence[str],
    text_fields: Sequence[str] | None,
    ablation: Sequence[Sequence[str]],
    prepared_fields: Sequence[str],
) -> list[tuple[str, tuple[str, ...] | None]]:
    """(kind, text fields or None for the prepared text) of every head to train: each kind,
    then the text-reading kinds on each ablation field list (none when ``text_fields`` is
    given)."""
    reads_text = [kind for kind in kinds if "text" in HEAD_INPUTS[kind]]
    ablation = [] if text_fields else [f for f in ablation if tuple(f) != tuple(prepared_fields)]
    explicit = tuple(text_fields) if text_fields else None
    plan = [(kind, explicit if kind in reads_text else None) for kind in kinds]
    plan += [(kind, tuple(fields)) for fields in ablation for kind in reads_text]
    return list(dict.fromkeys(plan))


def head_metadata(
    layout: RunLayout,
    data: PreparedData,
    kind: str,
    fields: Sequence[str] | None,
    name: str,
) -> dict:
    """What head.json records beside the weights: inputs, the features fingerprint, and the
    projections the head learnt from (a head that never saw a lateral refuses one)."""
    prepared_fields = data.summary["config"]["text_fields"]
    read = None if kind == "image" else list(fields or prepared_fields)
    views = data.split_images("train")["projection"].value_counts().sort_index()
    return {
        "name": name,
        "kind": kind,
        "inputs": list(HEAD_INPUTS[kind]),
        "text_fields": read,
        "fingerprint": layout.features_fingerprint(data.root, read),
        "views": {str(view): int(count) for view, count in views.items()},
    }


def probe(
    run: str | Path,
    data_dir: str | Path,
    config: RunConfig,
    kinds: Sequence[str] = tuple(HEAD_INPUTS),
    text_fields: Sequence[str] | None = None,
    device: str | torch.device | None = None,
) -> list[TrainedHead]:
    """Train heads of the given kinds (multimodal, image, text) on the run's frozen CLIP, on
    ``device`` (default: CUDA when available). ``text_fields``: train the text-reading kinds on
    those report sections only; by default on the prepared text plus, for the leakage ablation,
    on each of ``config.probe.ablation``."""
    unknown = set(kinds) - set(HEAD_INPUTS)
    if unknown:
        raise ChestClipError(
            f"unknown head kind(s) {sorted(unknown)}: expected {list(HEAD_INPUTS)}"
        )
    layout, device = RunLayout(run), resolve_device(device)
    model, tokenizer = load_clip(layout.root, device)
    data = PreparedData(data_dir)
    cache = FeatureCache(layout.root, model, tokenizer, data, config.pretrain.precision)
    labels = {split: data.split_images(split)["label"].to_numpy() for split in ("train", "val")}
    prepared_fields = tuple(data.summary["config"]["text_fields"])
    settings = config.probe
    plan = head_plan(kinds, text_fields, settings.ablation, prepared_fields)
    trained = []
    for kind, fields in plan:
        name = head_name(kind, fields)
        train_x, val_x = (head_features(cache, kind, split, fields) for split in ("train", "val"))
        trained.append(
            train_head(
                lambda in_dim: ClassifierModule(
                    MLPHead(in_dim, settings.hidden_sizes, settings.dropout),
                    settings.optimizer,
                    settings.lr,
                    settings.weight_decay,
                ),
                (train_x, labels["train"]),
                (val_x, labels["val"]),
                settings,
                layout.head(name),
                config.seed,
                head_metadata(layout, data, kind, fields, name),
                device,
            )
        )
    return trained
