"""Whether a run should answer for an input: the fitted OOD guard and the view check together.

:func:`fit_guard` fits ``RUN/ood/`` on a prepared dataset's training and validation splits
(``chestclip evaluate`` calls it). :class:`TrustPolicy` is what ``predict``, ``serve`` and
``explain --image`` ask about each image: it gives a :class:`Verdict` whose ``reason`` says why
the run gives no decision (out of distribution, or a view its heads never saw), or None.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chestclip.data import PreparedData
from chestclip.data.records import FRONTAL, LATERAL, UNKNOWN
from chestclip.errors import ChestClipError
from chestclip.evaluation.features import FeatureCache
from chestclip.inference.ood import NOT_FITTED, OODCheck, OODGuard
from chestclip.inference.view_check import ViewCheck, check_view
from chestclip.models import load_clip
from chestclip.models.heads import MLPHead
from chestclip.training.probe import load_head
from chestclip.utils.device import resolve_device
from chestclip.utils.run_layout import HEAD_FILE, RunLayout

IMAGE_HEAD = "image"


def fit_guard(
    run: str | Path, data_dir: str | Path, device: str | torch.device | None = None
) -> OODGuard:
    """Fit the run's OOD guard on ``data_dir`` (the data its heads were trained on): reference
    statistics from the training split, thresholds from the validation split, embeddings on
    ``device`` (default: CUDA when available); saved in ``RUN/ood/``."""
    run, data = Path(run), PreparedData(data_dir)
    if data.split_images("val").empty:
        raise ChestClipError(f"{data.root}: no validation images to fit the OOD guard on")
    model, tokenizer = load_clip(run, resolve_device(device))
    cache = FeatureCache(run, model, tokenizer, data)
    head = image_head(run)

    def split(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        table = data.split_images(name)
        embeddings = cache.images(name)
        with torch.no_grad():
            logits = None if head is None else head(torch.from_numpy(embeddings)).numpy()
        return data.array[table["row"].to_numpy()], embeddings, table["label"].to_numpy(), logits

    train, (val_images, val_embeddings, _, val_logits) = split("train"), split("val")
    guard = OODGuard.fit(train, (val_images, val_embeddings, val_logits))
    guard.save(run, {"data": str(data.root.resolve()), "image_head": head is not None})
    return guard


def image_head(run: str | Path) -> MLPHead | None:
    """The run's image-only head (its energy is one of the OOD scores), if it has one."""
    directory = RunLayout(run).head(IMAGE_HEAD)
    return load_head(directory)[0] if (directory / HEAD_FILE).is_file() else None


def trained_views(infos: Iterable[dict[str, Any]], training_data: dict[str, Any]) -> set[str]:
    """The projections every head was trained on: recorded in head.json by ``probe`` (training
    images of unknown projection: both); for older heads, frontal when the data was prepared with
    ``--views frontal``, else both."""
    views = {FRONTAL, LATERAL}
    for info in infos:
        recorded = info.get("views")
        if recorded is not None:
            seen = {view for view, count in recorded.items() if count}
            views &= views if UNKNOWN in seen else seen
        elif training_data.get("views") == "frontal":
            views &= {FRONTAL}
    return views


@dataclass(frozen=True)
class Verdict:
    """What the guard and the view check found for one image."""

    ood: OODCheck | None  # None: the run has no fitted guard
    view: ViewCheck | None  # None: the view could not be told
    trained_views: frozenset[str]
    allow_ood: bool = False

    @property
    def reasons(self) -> list[str]:
        """Why the run should not answer for this image (empty: nothing against it)."""
        found = [self.ood.reason] if self.ood and self.ood.out_of_distribution else []
        if self.view and self.view.projection not in self.trained_views:
            found.append(
                f"{self.view.projection.lower()} view (P(frontal) {self.view.p_frontal:.2f}); "
                f"the heads were trained on {' and '.join(sorted(self.trained_views)).lower()} "
                "views only"
            )
        return found

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)

    @property
    def refused(self) -> bool:
        """No decision is given: flagged, and ``--allow-ood`` was not asked for."""
        return self.flagged and not self.allow_ood

    @property
    def frontal(self) -> bool:
        """Lung zones apply: frontal, or a view that could not be told."""
        return self.view is None or self.view.projection == FRONTAL

    @property
    def notes(self) -> list[str]:
        """What the reader should know even when nothing is flagged."""
        found = [] if self.ood else [NOT_FITTED]
        if not self.frontal:
            found.append("lateral view: no lung-zone analysis (zones are for frontal films)")
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "flagged": self.flagged,
            "refused": self.refused,
            "reasons": self.reasons,
            "notes": self.notes,
            "ood": self.ood.as_dict() if self.ood else None,
            "view": self.view.as_dict() if self.view else None,
        }


@dataclass
class TrustPolicy:
    """A run's guard (None when not fitted), the views its heads were trained on, and its image
    head (for the energy score)."""

    guard: OODGuard | None
    views: frozenset[str]
    head: MLPHead | None = None

    @classmethod
    def load(
        cls, run: str | Path, infos: Iterable[dict[str, Any]], training_data: dict[str, Any]
    ) -> TrustPolicy:
        """For the heads whose head.json are ``infos``, trained on ``training_data``."""
        views = frozenset(trained_views(infos, training_data))
        return cls(OODGuard.load(run), views, image_head(run))

    def check(
        self, image: np.ndarray, embedding: np.ndarray | None, allow_ood: bool = False
    ) -> Verdict:
        """The verdict on ``image`` uint8 [S, S] whose CLIP image embedding is [D] (needed only
        when the run has a guard)."""
        ood = None
        if self.guard is not None:
            if embedding is None:
                raise ValueError("the OOD guard needs the image's CLIP embedding")
            with torch.no_grad():
                logits = None if self.head is None else self.head(torch.from_numpy(embedding))
            ood = self.guard.check(image, embedding, None if logits is None else logits.numpy())
        return Verdict(ood, check_view(image), self.views, allow_ood)
