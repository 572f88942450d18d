"""Read a prepared directory: tables plus the memory-mapped image array, as a torch Dataset."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from chestclip.data.prepare import IMAGES_FILE
from chestclip.data.records import FRONTAL
from chestclip.errors import ChestClipError

REQUIRED_FILES = ("studies.csv", "images.csv", "summary.json")
logger = logging.getLogger(__name__)


class PreparedDataError(ChestClipError):
    """A directory that is not (or not completely) a prepared dataset."""


class PreparedData:
    """The tables of a prepared dataset and lazy access to its image array.

    ``studies``: one row per patient/report; ``images``: one row per image, ``row`` indexing the
    array. ``study_index``/``text_index`` are integer ids for the contrastive loss: images of one
    study share a study index; studies whose cleaned texts are identical share a text index.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        missing = [f for f in REQUIRED_FILES if not (self.root / f).is_file()]
        if missing:
            raise PreparedDataError(
                f"{self.root}: not a prepared dataset (missing {', '.join(missing)}); "
                "run `chestclip prepare` first"
            )
        self.summary: dict[str, Any] = json.loads((self.root / "summary.json").read_text())
        self.studies = pd.read_csv(
            self.root / "studies.csv", dtype={"uid": str}, keep_default_na=False
        )
        images = pd.read_csv(
            self.root / "images.csv", dtype={"uid": str, "image_id": str}, keep_default_na=False
        )
        self.studies["study_index"] = np.arange(len(self.studies))
        self.studies["text_index"] = pd.factorize(self.studies["text"])[0]
        by_uid = self.studies.set_index("uid")
        self.images = images.assign(
            text=images["uid"].map(by_uid["text"]),
            study_index=images["uid"].map(by_uid["study_index"]),
            text_index=images["uid"].map(by_uid["text_index"]),
        )
        self._array: np.ndarray | None = None

    @property
    def has_images(self) -> bool:
        return (self.root / IMAGES_FILE).is_file()

    @property
    def array(self) -> np.ndarray:
        """uint8 [N, S, S], memory-mapped (opened on first use, once per process)."""
        if self._array is None:
            if not self.has_images:
                raise PreparedDataError(f"{self.root}: prepared with --no-images: no image array")
            self._array = np.load(self.root / IMAGES_FILE, mmap_mode="r")
            if len(self._array) != len(self.images):
                raise PreparedDataError(
                    f"{self.root}: {IMAGES_FILE} has {len(self._array)} rows "
                    f"but images.csv has {len(self.images)}"
                )
        return self._array

    def split_images(self, split: str | None = None, projection: str | None = None) -> pd.DataFrame:
        table = self.images
        if split is not None:
            table = table[table["split"] == split]
        if projection is not None:
            table = table[table["projection"] == projection]
        return table.reset_index(drop=True)

    def view_filter(self, views: str, splits: Sequence[str], stage: str) -> str | None:
        """The projection ``stage`` reads when its config asks for ``views`` ("all" or
        "frontal"): FRONTAL, or None (every view) when all views are asked for or one of
        ``splits`` has no frontal image. That fallback is logged as a warning and returned, never
        an error: a dataset whose views are unknown still runs (see ``fallback_note``)."""
        if views != "frontal":
            return None
        frontal = self.images.loc[self.images["projection"] == FRONTAL, "split"]
        missing = [split for split in splits if not (frontal == split).any()]
        if not missing:
            return FRONTAL
        logger.warning("%s", fallback_note(self.root, missing, stage))
        return None

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers re-open the memory map
        return {**self.__dict__, "_array": None}


def fallback_note(root: Path, splits: Sequence[str], stage: str) -> str:
    """The warning of ``PreparedData.view_filter`` when it falls back to every view."""
    return (
        f"{root}: no frontal image in split(s) {', '.join(splits)}: {stage} uses every view "
        "instead (see views_by_source in summary.json)"
    )


class XrayReportDataset(Dataset):
    """(X-ray, report) pairs of one split.

    Each item: ``image`` float32 [1, S, S] in [0, 1] (after ``transform``), ``text`` str,
    ``label`` int (0 normal, 1 diseased), ``uid``, ``image_id``, ``study_index``, ``text_index``.
    """

    def __init__(
        self,
        data: PreparedData | str | Path,
        split: str | None = None,
        projection: str | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.data = data if isinstance(data, PreparedData) else PreparedData(data)
        self.table = self.data.split_images(split, projection)
        self.transform = transform
        self._rows = self.table["row"].to_numpy()
        self._records = self.table[
            ["text", "label", "uid", "image_id", "study_index", "text_index"]
        ].to_dict("records")

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict[str, Any]:
        pixels = torch.from_numpy(
            np.array(self.data.array[self._rows[index]], dtype=np.float32) / 255.0
        )
        image = pixels.unsqueeze(0)  # [1, S, S]
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, **self._records[index]}
