"""Frozen-CLIP features per image, cached per split so heads retrain in seconds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from chestclip.data import PreparedData
from chestclip.data.text import build_text
from chestclip.models import ChestCLIP
from chestclip.utils.device import inference_precision, model_device
from chestclip.utils.io import atomic_path
from chestclip.utils.run_layout import RunLayout


def batch_starts(total: int, batch_size: int, what: str) -> tqdm:
    """Batch offsets with a progress bar (shown on a terminal only, for more than a few batches)."""
    return tqdm(
        range(0, total, batch_size),
        desc=what,
        unit="batch",
        leave=False,
        disable=None if total > 4 * batch_size else True,
    )


@torch.no_grad()
def encode_images(
    model: ChestCLIP, pixels: np.ndarray, batch_size: int = 64, precision: str = "32-true"
) -> np.ndarray:
    """uint8 [N, S, S] → unit-norm embeddings float32 [N, D], in batches on the model's device
    (autocast there as ``precision`` says: see ``inference_precision``)."""
    device = model_device(model)
    parts = []
    with inference_precision(device, precision):
        for start in batch_starts(len(pixels), batch_size, "image features"):
            batch = torch.from_numpy(
                np.asarray(pixels[start : start + batch_size], dtype=np.float32) / 255.0
            )
            parts.append(model.encode_image(batch[:, None].to(device)).float().cpu())
    return torch.cat(parts).numpy() if parts else np.zeros((0, model.config.embed_dim), np.float32)


@torch.no_grad()
def encode_texts(
    model: ChestCLIP, tokenizer, texts: list[str], batch_size: int = 64, precision: str = "32-true"
) -> np.ndarray:
    """Texts → unit-norm embeddings float32 [N, D] (each distinct text encoded once)."""
    device = model_device(model)
    unique = sorted(set(texts))
    parts = []
    for start in batch_starts(len(unique), batch_size, "text features"):
        tokens = tokenizer(
            unique[start : start + batch_size], padding=True, truncation=True,
            max_length=model.config.max_text_length, return_tensors="pt",
        )  # fmt: skip
        with inference_precision(device, precision):
            embedded = model.encode_text(
                tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
            )
        parts.append(embedded.float().cpu())
    table = torch.cat(parts).numpy() if parts else np.zeros((0, model.config.embed_dim), np.float32)
    index = {text: i for i, text in enumerate(unique)}
    return table[[index[t] for t in texts]] if texts else table


def texts_for(data: PreparedData, fields: tuple[str, ...] | None) -> pd.Series:
    """Per-study model text: the prepared one, or rebuilt from other report sections with the
    prepared cleaning mode (the leakage ablation: e.g. indication only)."""
    prepared_fields = tuple(data.summary["config"]["text_fields"])
    if fields is None or tuple(fields) == prepared_fields:
        return data.studies.set_index("uid")["text"]
    cleaned = build_text(data.studies, tuple(fields), data.summary["config"]["clean"])
    return pd.Series(cleaned.to_numpy(), index=data.studies["uid"])


class FeatureCache:
    """``RUN/features/``: image and text embeddings per split, keyed to the run's features
    fingerprint (CLIP weights and prepared dataset), so a retrained CLIP never reuses stale
    features. ``model`` is the run's CLIP, on the device features are computed on."""

    def __init__(
        self,
        run: str | Path,
        model: ChestCLIP,
        tokenizer,
        data: PreparedData,
        precision: str = "32-true",
    ):
        layout = RunLayout(run)
        self.root = layout.features
        self.model, self.tokenizer, self.data, self.precision = model, tokenizer, data, precision
        key = json.dumps(layout.features_fingerprint(data.root), sort_keys=True)
        self.fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]

    def _cached(self, name: str, compute) -> np.ndarray:
        path = self.root / f"{name}.npz"
        if path.is_file():
            stored = np.load(path)
            if str(stored["fingerprint"]) == self.fingerprint:
                return stored["features"]
        features = compute()
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, features=features, fingerprint=self.fingerprint)
        return features

    def images(self, split: str) -> np.ndarray:
        """[N_split_images, D] in ``data.split_images(split)`` order."""
        rows = self.data.split_images(split)["row"].to_numpy()
        return self._cached(
            f"image_{split}",
            lambda: encode_images(self.model, self.data.array[rows], precision=self.precision),
        )

    def texts(self, split: str, fields: tuple[str, ...] | None = None) -> np.ndarray:
        """[N_split_images, D]: each image's report embedding, for the chosen text fields."""
        per_study = texts_for(self.data, fields)
        texts = per_study.loc[self.data.split_images(split)["uid"]].tolist()
        name = "text_" + ("+".join(fields) if fields else "prepared") + f"_{split}"
        return self._cached(
            name, lambda: encode_texts(self.model, self.tokenizer, texts, precision=self.precision)
        )
