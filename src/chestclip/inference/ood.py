"""The out-of-distribution guard: how unlike the training images an input is, and whether the
run should answer for it at all.

Every score is higher for inputs less like the training images:

- ``knn``: cosine distance from the image's CLIP embedding to its k-th nearest training image
  embedding (Sun et al. 2022, deep nearest neighbours).
- ``mahalanobis``: Mahalanobis distance of the embedding to the nearer class mean (normal,
  diseased) under one shared Ledoit-Wolf covariance (Lee et al. 2018).
- ``energy``: the image head's energy, −logsumexp(logits) (Liu et al. 2020).
- ``pixels``: how badly the training images' principal components reconstruct a 32×32 thumbnail
  of the input (model-free: it sees what the encoder may squash).

The reference statistics are fitted on the training split and each score's threshold is its
99th percentile on the validation split, so about 1 % of in-distribution images are refused by
design. :func:`fit_guard` runs inside ``chestclip evaluate`` and writes ``RUN/ood/guard.json``
(thresholds, the method in use, provenance) and ``RUN/ood/reference.safetensors`` (no pickle).
Hand-written: the maintained OOD library (pytorch-ood) needs torchvision, which this project
cannot install beside its CPU torch; the maths is a few lines of numpy on top of scikit-learn's
covariance and PCA estimators.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from safetensors.numpy import load_file
from safetensors.numpy import save as safetensors_bytes
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

from chestclip import __version__
from chestclip.errors import ChestClipError
from chestclip.utils.io import atomic_directory
from chestclip.utils.run_layout import RunLayout

GUARD_FILE = "guard.json"
REFERENCE_FILE = "reference.safetensors"
METHODS = ("knn", "mahalanobis", "energy", "pixels")
# a pixel score and an embedding score together: each divided by its own threshold, the larger
COMBINED = ("pixels+mahalanobis", "pixels+knn")
# Chosen by measurement (benchmarks/bench_ood.py, README "Trust at inference").
DEFAULT_METHOD = "pixels+mahalanobis"
QUANTILE = 0.99
NEIGHBOURS = 10
THUMBNAIL = 32
PIXEL_VARIANCE = 0.95  # principal components kept: this share of the thumbnails' variance
NOT_FITTED = "OOD guard not fitted: run `chestclip evaluate`"
DESCRIPTIONS = {
    "knn": "distance to the nearest training images (CLIP embedding)",
    "mahalanobis": "Mahalanobis distance to the training classes (CLIP embedding)",
    "energy": "energy of the image head",
    "pixels": "pixel reconstruction error (training images' principal components)",
    **{
        name: f"the larger of the {' and '.join(name.split('+'))} scores, each over its threshold,"
        for name in COMBINED
    },
}


def guard_dir(run: str | Path) -> Path:
    """Where a run's fitted guard lives."""
    return RunLayout(run).ood


def thumbnails(images: np.ndarray) -> np.ndarray:
    """uint8 [N, S, S] → float32 [N, THUMBNAIL²] in [0, 1], area-averaged."""
    size = (THUMBNAIL, THUMBNAIL)
    small = [
        np.asarray(Image.fromarray(np.asarray(image)).resize(size, Image.Resampling.BOX))
        for image in images
    ]
    return np.stack(small).reshape(len(images), -1).astype(np.float32) / 255.0


def knn_distance(reference: np.ndarray, queries: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """1 − cosine similarity to the k-th nearest row of ``reference`` [N, D] for each unit-norm
    query [M, D] → [M]."""
    similarity = queries @ reference.T  # [M, N]
    k = min(k, reference.shape[0])
    kth = np.partition(-similarity, k - 1, axis=1)[:, k - 1]
    return (1.0 + kth).astype(np.float32)


def energy(logits: np.ndarray) -> np.ndarray:
    """−logsumexp over classes of logits [M, C] → [M] (low for confident, familiar inputs)."""
    top = logits.max(axis=1, keepdims=True)
    return -(top[:, 0] + np.log(np.exp(logits - top).sum(axis=1)))


def combined(scores: Mapping[str, np.ndarray], thresholds: Mapping[str, float]):
    """The COMBINED scores [M] whose members are in ``scores``: each member over its threshold,
    the larger (members are non-negative distances with positive thresholds)."""
    return {
        name: np.max([scores[m] / thresholds[m] for m in name.split("+")], axis=0)
        for name in COMBINED
        if all(m in scores for m in name.split("+"))
    }


@dataclass
class Reference:
    """What the scores compare an input with, all fitted on the training split."""

    embeddings: np.ndarray  # [N, D] unit-norm training image embeddings
    class_means: np.ndarray  # [C, D]
    precision: np.ndarray  # [D, D] inverse of the shared (shrunk) covariance
    pixel_mean: np.ndarray  # [P] mean thumbnail
    pixel_components: np.ndarray  # [K, P] principal axes of the thumbnails

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: np.ndarray, images: np.ndarray) -> Reference:
        """From training embeddings [N, D], labels [N] and images uint8 [N, S, S]."""
        classes = np.unique(labels)
        means = np.stack([embeddings[labels == c].mean(axis=0) for c in classes])
        centred = embeddings - means[np.searchsorted(classes, labels)]
        covariance = LedoitWolf(assume_centered=True).fit(centred)
        pca = PCA(n_components=PIXEL_VARIANCE, svd_solver="full").fit(thumbnails(images))
        return cls(
            embeddings.astype(np.float32),
            means.astype(np.float32),
            covariance.precision_.astype(np.float32),
            pca.mean_.astype(np.float32),
            pca.components_.astype(np.float32),
        )

    def scores(
        self, images: np.ndarray, embeddings: np.ndarray, logits: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """Every score [M] for images uint8 [M, S, S], their embeddings [M, D] and the image
        head's logits [M, C] (None: no image head, no energy score)."""
        offsets = embeddings[:, None, :] - self.class_means[None]  # [M, C, D]
        squared = np.einsum("mcd,de,mce->mc", offsets, self.precision, offsets)
        pixels = thumbnails(images) - self.pixel_mean
        residual = pixels - (pixels @ self.pixel_components.T) @ self.pixel_components
        found = {
            "knn": knn_distance(self.embeddings, embeddings),
            "mahalanobis": np.sqrt(np.maximum(squared.min(axis=1), 0.0)),
            "pixels": np.sqrt((residual**2).mean(axis=1)),
        }
        if logits is not None:
            found["energy"] = energy(logits)
        return {name: found[name] for name in METHODS if name in found}

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.ascontiguousarray(value) for name, value in self.__dict__.items()}


@dataclass(frozen=True)
class OODCheck:
    """One input's score against its threshold."""

    method: str
    score: float
    threshold: float

    @property
    def out_of_distribution(self) -> bool:
        return self.score > self.threshold

    @property
    def reason(self) -> str | None:
        if not self.out_of_distribution:
            return None
        return (
            f"out of distribution: {DESCRIPTIONS[self.method]} {self.score:.3g} is above the "
            f"threshold {self.threshold:.3g} fitted on the validation images"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "score": self.score,
            "threshold": self.threshold,
            "out_of_distribution": self.out_of_distribution,
        }


@dataclass
class OODGuard:
    """A fitted reference, every score's validation threshold, and the score in use."""

    reference: Reference
    thresholds: dict[str, float]
    method: str = DEFAULT_METHOD
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        train: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None],
        val: tuple[np.ndarray, np.ndarray, np.ndarray | None],
        quantile: float = QUANTILE,
    ) -> OODGuard:
        """``train``: (images [N, S, S], embeddings [N, D], labels [N], head logits [N, C] or
        None); ``val``: (images, embeddings, logits) of the validation split."""
        images, embeddings, labels, _ = train
        reference = Reference.fit(embeddings, labels, images)
        val_scores = reference.scores(*val)
        thresholds = {name: float(np.quantile(s, quantile)) for name, s in val_scores.items()}
        for name, scores in combined(val_scores, thresholds).items():
            val_scores[name], thresholds[name] = scores, float(np.quantile(scores, quantile))
        method = DEFAULT_METHOD if DEFAULT_METHOD in thresholds else next(iter(thresholds))
        meta = {
            "quantile": quantile,
            "neighbours": NEIGHBOURS,
            "thumbnail": THUMBNAIL,
            "pixel_components": int(reference.pixel_components.shape[0]),
            "n_train": len(labels),
            "n_val": len(val[1]),
            "validation_refused": {
                name: float(np.mean(s > thresholds[name])) for name, s in val_scores.items()
            },
        }
        return cls(reference, thresholds, method, meta)

    def check(
        self, image: np.ndarray, embedding: np.ndarray, logits: np.ndarray | None
    ) -> OODCheck:
        """Score one image uint8 [S, S] with its embedding [D] and image-head logits [C]."""
        found = self.scores(image[None], embedding[None], None if logits is None else logits[None])
        score = float(found[self.method][0])
        return OODCheck(self.method, score, self.thresholds[self.method])

    def scores(
        self, images: np.ndarray, embeddings: np.ndarray, logits: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """Every fitted score [M], combinations included (arguments as ``Reference.scores``)."""
        found = self.reference.scores(images, embeddings, logits)
        return found | combined(found, self.thresholds)

    def save(self, run: str | Path, provenance: Mapping[str, Any] = ()) -> Path:
        """Write ``RUN/ood/`` whole or not at all."""
        document = {
            "method": self.method,
            "thresholds": self.thresholds,
            **self.meta,
            **dict(provenance),
            "chestclip": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        with atomic_directory(guard_dir(run)) as tmp:
            (tmp / REFERENCE_FILE).write_bytes(safetensors_bytes(self.reference.arrays()))
            (tmp / GUARD_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return guard_dir(run)

    @classmethod
    def load(cls, run: str | Path) -> OODGuard | None:
        """The run's fitted guard; None for a run fitted before guards existed (or never
        evaluated); a one-line error for a damaged one."""
        directory = guard_dir(run)
        if not (directory / GUARD_FILE).is_file():
            return None
        try:
            document = json.loads((directory / GUARD_FILE).read_text(encoding="utf-8"))
            thresholds = {str(k): float(v) for k, v in document.pop("thresholds").items()}
            method = document.pop("method")
            reference = Reference(**load_file(str(directory / REFERENCE_FILE)))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ChestClipError(
                f"{directory}: damaged OOD guard ({' '.join(str(error).split())}); "
                "rerun `chestclip evaluate`"
            ) from None
        if method not in thresholds:
            raise ChestClipError(f"{directory / GUARD_FILE}: no threshold for method {method!r}")
        return cls(reference, thresholds, method, document)
