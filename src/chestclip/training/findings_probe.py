"""Multi-label heads on the frozen CLIP features: one sigmoid per finding of the prepared
``findings.csv`` (masked BCE, best epoch by the validation macro ROC-AUC), beside the binary heads
of ``chestclip.training.probe``.

Heads read the image features (``image``) and, when the data has reports, image ⊕ report
(``multimodal``, with the leakage-ablation text fields as the binary heads). Each is saved in
``RUN/heads/findings/<name>/`` with the binary heads' head.json (features fingerprint, views)
plus the finding names it predicts, in order, and those it could not learn (no positive or no
negative training label) with the reason: they are reported, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from chestclip.config import RunConfig
from chestclip.data import PreparedData
from chestclip.evaluation.features import FeatureCache
from chestclip.models import load_clip
from chestclip.models.heads import MultiLabelHead
from chestclip.training.classifier_module import MultiLabelModule
from chestclip.training.probe import (
    TrainedHead,
    head_features,
    head_metadata,
    head_name,
    head_plan,
    train_head,
)
from chestclip.utils.device import resolve_device
from chestclip.utils.run_layout import RunLayout

FINDING_KINDS = ("image", "multimodal")  # a text-only head would only read the labels back


def finding_targets(data: PreparedData, split: str) -> pd.DataFrame:
    """Targets [N_split_images, K] in ``data.split_images(split)`` order: each image carries
    its study's labels (1, 0, NaN = masked); columns are ``data.finding_names``."""
    uids = data.split_images(split)["uid"]
    return data.findings.loc[uids].reset_index(drop=True)


def learnable_findings(train: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """The findings a head can learn from ``train`` targets (both classes present), and the
    others with the reason."""
    kept, skipped = [], {}
    for name in train.columns:
        positives, negatives = int((train[name] == 1).sum()), int((train[name] == 0).sum())
        if positives and negatives:
            kept.append(name)
        else:
            missing = "positive" if not positives else "negative"
            skipped[name] = f"no {missing} label in the training split"
    return kept, skipped


def target_arrays(targets: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(targets float32 [N, K] with 0 where masked, mask bool [N, K]) for the masked BCE."""
    values = targets.to_numpy(dtype=np.float32)
    mask = ~np.isnan(values)
    return np.where(mask, values, 0.0).astype(np.float32), mask


def probe_findings(
    run: str | Path,
    data_dir: str | Path,
    config: RunConfig,
    kinds: Sequence[str] = FINDING_KINDS,
    text_fields: Sequence[str] | None = None,
    device: str | torch.device | None = None,
) -> list[TrainedHead]:
    """Train a multi-label head per kind of ``kinds`` that applies (``FINDING_KINDS``;
    multimodal only with reports) on the run's frozen CLIP; none when the prepared data has no
    findings or no finding has both classes in training. ``text_fields`` as in ``probe``."""
    data = PreparedData(data_dir)
    if data.findings is None:
        return []
    targets = {split: finding_targets(data, split) for split in ("train", "val")}
    names, skipped = learnable_findings(targets["train"])
    kinds = [k for k in kinds if k in FINDING_KINDS and (k == "image" or data.has_reports)]
    if not names or not kinds:
        return []
    layout, device = RunLayout(run), resolve_device(device)
    model, tokenizer = load_clip(layout.root, device)
    cache = FeatureCache(layout.root, model, tokenizer, data, config.pretrain.precision)
    prepared_fields = tuple(data.summary["config"]["text_fields"])
    settings = config.probe
    arrays = {split: target_arrays(targets[split][names]) for split in targets}
    policy = {key: data.summary["config"].get(key) for key in ("uncertain", "missing")}
    trained = []
    for kind, fields in head_plan(kinds, text_fields, settings.ablation, prepared_fields):
        name = head_name(kind, fields)
        train_x, val_x = (head_features(cache, kind, split, fields) for split in ("train", "val"))
        metadata = {
            **head_metadata(layout, data, kind, fields, name),
            "task": "findings",
            "findings": names,
            "skipped_findings": skipped,
            "label_policy": policy,
        }
        trained.append(
            train_head(
                lambda in_dim: MultiLabelModule(
                    MultiLabelHead(in_dim, names, settings.hidden_sizes, settings.dropout),
                    settings.optimizer,
                    settings.lr,
                    settings.weight_decay,
                ),
                (train_x, *arrays["train"]),
                (val_x, *arrays["val"]),
                settings,
                layout.finding_head(name),
                config.seed,
                metadata,
                device,
            )
        )
    return trained
