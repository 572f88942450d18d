"""Recognise which IU X-Ray layout a path holds and read it."""

from __future__ import annotations

from pathlib import Path

from chestclip.data.kaggle import (
    PROJECTIONS_CSV,
    REPORTS_CSV,
    KaggleFormatError,
    is_kaggle,
    read_kaggle,
)
from chestclip.data.openi import REPORTS_ARCHIVE, OpenIFormatError, is_openi, read_openi
from chestclip.data.records import SourceRecords
from chestclip.errors import ChestClipError

EXPECTED = (
    f"an OpenI download (a folder with ecgen-radiology/*.xml or {REPORTS_ARCHIVE}, or that archive "
    f"itself) or the Kaggle layout (a folder with {REPORTS_CSV} and {PROJECTIONS_CSV})"
)


class SourceError(ChestClipError):
    """The source cannot be read as a whole; the message is one line naming the path."""


def detect_layout(source: str | Path) -> str:
    """``"openi"`` or ``"kaggle"``; SourceError naming what was expected otherwise."""
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    if is_kaggle(path):
        return "kaggle"
    if is_openi(path):
        return "openi"
    raise SourceError(f"{path}: not an IU X-Ray layout: expected {EXPECTED}")


def read_source(source: str | Path, with_images: bool = True) -> SourceRecords:
    """Parse the reports and image references of an OpenI or Kaggle source."""
    path = Path(source)
    layout = detect_layout(path)
    try:
        records = (
            read_kaggle(path, with_images) if layout == "kaggle" else read_openi(path, with_images)
        )
    except (KaggleFormatError, OpenIFormatError) as err:
        raise SourceError(str(err)) from None
    if records.reports.empty:
        reasons = sorted({s.reason for s in records.skipped})[:3]
        raise SourceError(
            f"{path}: no readable report in this {layout} source ({'; '.join(reasons) or 'empty'})"
        )
    return records
