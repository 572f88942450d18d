"""Read a prepared directory: tables, findings and the image cache (memory-mapped array or tar
shards), as a torch Dataset."""

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

from chestclip.data.prepare import FINDINGS_FILE, IMAGES_FILE
from chestclip.data.records import FRONTAL
from chestclip.data.shards import SHARDS_DIR, ShardArray, read_index
from chestclip.errors import ChestClipError

REQUIRED_FILES = ("studies.csv", "images.csv", "summary.json")
logger = logging.getLogger(__name__)


class PreparedDataError(ChestClipError):
    """A directory that is not (or not completely) a prepared dataset."""


class PreparedData:
    """The tables of a prepared dataset and lazy access to its image array.

    ``studies``: one row per study/report; ``images``: one row per image, ``row`` indexing the
    array. ``study_index``/``text_index`` are integer ids for the contrastive loss: images of one
    study share a study index; studies whose cleaned texts are identical share a text index.
    ``findings``: multi-label targets per study (uid index; 1, 0, NaN = masked), or None.
    ``shards_url``: read the shards from there (a shared file system or ``s3://...``) instead
    of ``root/shards``.
    """

    def __init__(self, root: str | Path, shards_url: str | None = None):
        self.root = Path(root)
        self.shards_url = shards_url or str(self.root / SHARDS_DIR)
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
        self.findings = self._read_findings()
        self.studies["study_index"] = np.arange(len(self.studies))
        self.studies["text_index"] = pd.factorize(self.studies["text"])[0]
        by_uid = self.studies.set_index("uid")
        self.images = images.assign(
            text=images["uid"].map(by_uid["text"]),
            study_index=images["uid"].map(by_uid["study_index"]),
            text_index=images["uid"].map(by_uid["text_index"]),
        )
        self._array: np.ndarray | ShardArray | None = None
        self._shard_index: pd.DataFrame | None = None

    def _read_findings(self) -> pd.DataFrame | None:
        path = self.root / FINDINGS_FILE
        if not path.is_file():
            return None
        table = pd.read_csv(path, dtype={"uid": str}).set_index("uid").astype(float)
        return table.reindex(self.studies["uid"])

    @property
    def finding_names(self) -> list[str]:
        return [] if self.findings is None else list(self.findings.columns)

    @property
    def has_reports(self) -> bool:
        """False for an image-only source (CheXpert without CheXpert Plus): no report text."""
        return bool(self.summary.get("has_reports", True))

    def require_reports(self, what: str) -> None:
        """One-line PreparedDataError when ``what`` (e.g. "CLIP pre-training") needs text."""
        if not self.has_reports:
            raise PreparedDataError(
                f"{self.root}: {what} needs report text, but this {self.summary.get('layout')} "
                "source has none (image-only); add the reports (e.g. a CheXpert Plus table)"
            )

    @property
    def cache(self) -> str | None:
        """``array`` (images.npy), ``shards`` (tar shards) or None (prepared without images)."""
        if (self.root / IMAGES_FILE).is_file():
            return "array"
        return "shards" if (self.root / SHARDS_DIR).is_dir() else None

    @property
    def has_images(self) -> bool:
        return self.cache is not None

    @property
    def shard_index(self) -> pd.DataFrame:
        """Where each image row lies in the shards (``chestclip.data.shards.INDEX_COLUMNS``)."""
        if self._shard_index is None:
            self._shard_index = read_index(self.root / SHARDS_DIR)
        return self._shard_index

    @property
    def array(self) -> np.ndarray | ShardArray:
        """uint8 [N, S, S]: the memory-mapped images.npy, or the shards read the same way
        (opened on first use, once per process)."""
        if self._array is None:
            if not self.has_images:
                raise PreparedDataError(f"{self.root}: prepared with --no-images: no image array")
            if self.cache == "array":
                self._array = np.load(self.root / IMAGES_FILE, mmap_mode="r")
            else:
                size = int(self.summary["image_size"])
                self._array = ShardArray(self.shards_url, self.shard_index, size)
            if len(self._array) != len(self.images):
                raise PreparedDataError(
                    f"{self.root}: the image cache has {len(self._array)} images "
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
    ``label`` int (0 normal, 1 diseased), ``uid``, ``image_id``, ``study_index``, ``text_index``;
    with findings also ``findings`` float32 [K] (0/1, 0 where masked) and ``findings_mask`` bool
    [K] (False = ignored), K = ``data.finding_names``.
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
        self._fields = ItemFields(self.data, self.table)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = to_image_tensor(self.data.array[self._rows[index]], self.transform)
        return {"image": image, **self._fields[index]}


ITEM_FIELDS = ["text", "label", "uid", "image_id", "study_index", "text_index"]


class ItemFields:
    """Every field of a dataset item but the image, for each row of an images table. Findings
    are kept as two arrays and handed out as tensor views, not as a tensor per item."""

    def __init__(self, data: PreparedData, table: pd.DataFrame):
        self._records = table[ITEM_FIELDS].to_dict("records")
        self._targets = self._masks = None
        if data.findings is not None:
            targets = data.findings.loc[table["uid"]].to_numpy(dtype=np.float32)  # [N, K]
            self._masks, self._targets = ~np.isnan(targets), np.nan_to_num(targets)

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        fields = dict(self._records[index])
        if self._targets is not None:
            fields["findings"] = torch.from_numpy(self._targets[index])
            fields["findings_mask"] = torch.from_numpy(self._masks[index])
        return fields


def to_image_tensor(
    pixels: np.ndarray, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """uint8 [S, S] → float32 [1, S, S] in [0, 1], then ``transform``."""
    image = torch.from_numpy(np.array(pixels, dtype=np.float32) / 255.0).unsqueeze(0)
    return transform(image) if transform is not None else image
