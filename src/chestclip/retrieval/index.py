"""An embedding index of one split: every image and every report in the shared CLIP space.

Saved as a directory (written whole or not at all)::

    <path>/embeddings.npz   image [N_images, D] and text [N_studies, D] float32, unit norm
    <path>/images.csv       image_id, uid                    (row i ↔ image embedding i)
    <path>/studies.csv      uid, text, findings, impression  (row j ↔ text embedding j)
    <path>/index.json       split, clean mode, sizes, versions
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from chestclip import __version__
from chestclip.data import PreparedData
from chestclip.errors import ChestClipError
from chestclip.evaluation.features import encode_images, encode_texts
from chestclip.models import ChestCLIP
from chestclip.utils.io import atomic_directory

EMBEDDINGS_FILE = "embeddings.npz"
IMAGES_FILE = "images.csv"
STUDIES_FILE = "studies.csv"
META_FILE = "index.json"
IMAGE_COLUMNS = ["image_id", "uid"]
STUDY_COLUMNS = ["uid", "text", "findings", "impression"]
TRAIN_SPLIT = "train"


class EmbeddingIndexError(ChestClipError):
    """A directory that is not (or not completely) a saved embedding index."""


def _top_k(embeddings: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``embeddings`` [N, D] most similar to ``query`` [D]: (indices [k], cosines [k])."""
    query = np.asarray(query, dtype=np.float32)
    if query.shape != (embeddings.shape[1],):
        raise ValueError(
            f"query embedding must have shape ({embeddings.shape[1]},), got {query.shape}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    similarity = embeddings @ query
    order = np.argsort(-similarity, kind="stable")[:k]  # ties keep the index order
    return order, similarity[order]


@dataclass
class EmbeddingIndex:
    """Image and report embeddings of one split, with the ids and report text to show."""

    split: str
    images: pd.DataFrame  # IMAGE_COLUMNS, one row per image
    studies: pd.DataFrame  # STUDY_COLUMNS, one row per study; ``text`` is the cleaned model text
    image_embeddings: np.ndarray  # [N_images, D]
    text_embeddings: np.ndarray  # [N_studies, D]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.image_embeddings):
            raise ValueError(
                f"{len(self.images)} images but {len(self.image_embeddings)} image embeddings"
            )
        if len(self.studies) != len(self.text_embeddings):
            raise ValueError(
                f"{len(self.studies)} studies but {len(self.text_embeddings)} text embeddings"
            )

    @property
    def image_texts(self) -> pd.Series:
        """The cleaned report text of each image's study [N_images] (identical reports match)."""
        return self.images["uid"].map(self.studies.set_index("uid")["text"])

    def search_by_image(self, embedding: np.ndarray, k: int = 5) -> pd.DataFrame:
        """The ``k`` studies whose reports best match an image embedding [D], most similar first:
        columns ``rank, uid, similarity, findings, impression``."""
        rows, similarity = _top_k(self.text_embeddings, embedding, k)
        found = self.studies.iloc[rows][["uid", "findings", "impression"]].reset_index(drop=True)
        found.insert(1, "similarity", similarity)
        found.insert(0, "rank", np.arange(1, len(found) + 1))
        return found

    def search_by_text(self, embedding: np.ndarray, k: int = 5) -> pd.DataFrame:
        """The ``k`` images that best match a text embedding [D], most similar first: columns
        ``rank, image_id, uid, similarity``."""
        rows, similarity = _top_k(self.image_embeddings, embedding, k)
        found = self.images.iloc[rows][["image_id", "uid"]].reset_index(drop=True)
        found["similarity"] = similarity
        found.insert(0, "rank", np.arange(1, len(found) + 1))
        return found

    def save(self, path: str | Path) -> Path:
        """Write the index to the directory ``path`` atomically (all files or none)."""
        path = Path(path)
        with atomic_directory(path) as tmp:
            with open(tmp / EMBEDDINGS_FILE, "wb") as handle:
                np.savez(handle, image=self.image_embeddings, text=self.text_embeddings)
            self.images[IMAGE_COLUMNS].to_csv(tmp / IMAGES_FILE, index=False)
            self.studies[STUDY_COLUMNS].to_csv(tmp / STUDIES_FILE, index=False)
            meta = {**self.meta, "split": self.split}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingIndex:
        """Read an index written by :meth:`save`; a clear one-line error when it is not one."""
        path = Path(path)
        files = (EMBEDDINGS_FILE, IMAGES_FILE, STUDIES_FILE, META_FILE)
        missing = [name for name in files if not (path / name).is_file()]
        if missing:
            raise EmbeddingIndexError(
                f"{path}: not an embedding index (missing {', '.join(missing)})"
            )
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
            split = meta.pop("split")
        except (json.JSONDecodeError, KeyError, AttributeError) as error:
            raise EmbeddingIndexError(
                f"{path / META_FILE}: not an index record ({error})"
            ) from None
        images = pd.read_csv(path / IMAGES_FILE, dtype=str, keep_default_na=False)
        studies = pd.read_csv(path / STUDIES_FILE, dtype=str, keep_default_na=False)
        for name, table, columns in (
            (IMAGES_FILE, images, IMAGE_COLUMNS),
            (STUDIES_FILE, studies, STUDY_COLUMNS),
        ):
            if not set(columns) <= set(table.columns):
                raise EmbeddingIndexError(f"{path / name}: expected columns {columns}")
        with np.load(path / EMBEDDINGS_FILE) as stored:
            image_embeddings, text_embeddings = stored["image"], stored["text"]
        try:
            return cls(split, images, studies, image_embeddings, text_embeddings, meta)
        except ValueError as error:
            raise EmbeddingIndexError(f"{path}: inconsistent index ({error})") from None


def build_index(
    model: ChestCLIP,
    tokenizer: PreTrainedTokenizerBase,
    data: PreparedData,
    split: str,
    precision: str = "32-true",
) -> EmbeddingIndex:
    """Encode every image and every report of ``split`` (``model`` in eval mode, on the device
    it is on; ``precision``: see ``encode_images``)."""
    images = data.split_images(split)
    if images.empty:
        raise ValueError(f"{data.root}: no images in split {split!r}")
    studies = data.studies[data.studies["uid"].isin(images["uid"])].reset_index(drop=True)
    meta = {
        "clean_mode": data.summary["config"]["clean"],
        "text_fields": data.summary["config"]["text_fields"],
        "n_images": len(images),
        "n_studies": len(studies),
        "embed_dim": model.config.embed_dim,
        "chestclip": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return EmbeddingIndex(
        split=split,
        images=images[IMAGE_COLUMNS].copy(),
        studies=studies[STUDY_COLUMNS].copy(),
        image_embeddings=encode_images(model, data.array[images["row"].to_numpy()], 64, precision),
        text_embeddings=encode_texts(model, tokenizer, studies["text"].tolist(), 64, precision),
        meta=meta,
    )


def nearest_reports(index: EmbeddingIndex, image_embedding: np.ndarray, k: int = 3) -> pd.DataFrame:
    """Draft reports for an image embedding [D]: the ``k`` most similar distinct TRAINING
    reports, columns ``rank, uid, similarity, findings, impression``.

    Reports with the same findings and impression count once (the most similar study is kept).
    Only an index of the training split is accepted: drafting from test reports would leak.
    """
    if index.split != TRAIN_SPLIT:
        raise ValueError(
            f"nearest_reports needs an index of the {TRAIN_SPLIT!r} split, got {index.split!r}"
        )
    ranked = index.search_by_image(image_embedding, k=len(index.studies))
    distinct = ranked.drop_duplicates(["findings", "impression"]).head(k).reset_index(drop=True)
    distinct["rank"] = np.arange(1, len(distinct) + 1)
    return distinct
