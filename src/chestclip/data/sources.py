"""Recognise which layout a path holds (IU X-Ray's OpenI or Kaggle, MIMIC-CXR-JPG, CheXpert, a
manifest CSV) and read it."""

from __future__ import annotations

from pathlib import Path

from chestclip.config import ManifestConfig
from chestclip.data.chexpert import is_chexpert, read_chexpert
from chestclip.data.kaggle import PROJECTIONS_CSV, REPORTS_CSV, is_kaggle, read_kaggle
from chestclip.data.manifest import MANIFEST_NAME, is_manifest, read_manifest
from chestclip.data.mimic import METADATA, is_mimic, read_mimic
from chestclip.data.openi import REPORTS_ARCHIVE, is_openi, read_openi
from chestclip.data.records import SourceFormatError, SourceRecords
from chestclip.errors import ChestClipError

EXPECTED = (
    f"an OpenI download (a folder with ecgen-radiology/*.xml or {REPORTS_ARCHIVE}, or that archive "
    f"itself), the Kaggle layout (a folder with {REPORTS_CSV} and {PROJECTIONS_CSV}), "
    f"MIMIC-CXR-JPG (a folder with {METADATA}[.gz] and files/), CheXpert (CheXpert-v1.0[-small] "
    f"with train.csv/valid.csv) or a manifest CSV (a .csv file, or a folder with {MANIFEST_NAME})"
)
# checked in this order: the first layout a path matches is the one read
LAYOUTS = {
    "mimic": is_mimic,
    "chexpert": is_chexpert,
    "kaggle": is_kaggle,
    "openi": is_openi,
    "manifest": is_manifest,
}


class SourceError(ChestClipError):
    """The source cannot be read as a whole; the message is one line naming the path."""


def detect_layout(source: str | Path) -> str:
    """``"openi"``, ``"kaggle"``, ``"mimic"``, ``"chexpert"`` or ``"manifest"``; SourceError
    naming what was expected otherwise."""
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    layout = next((name for name, matches in LAYOUTS.items() if matches(path)), None)
    if layout is None:
        raise SourceError(f"{path}: not a known layout: expected {EXPECTED}")
    return layout


def read_source(
    source: str | Path,
    with_images: bool = True,
    labeler: str = "chexpert",
    manifest: ManifestConfig | None = None,
) -> SourceRecords:
    """Parse the reports, labels and image references of a source. ``labeler`` picks MIMIC-CXR's
    label file (chexpert or negbio); ``manifest`` maps a manifest CSV's columns."""
    path = Path(source)
    layout = detect_layout(path)
    readers = {
        "kaggle": lambda: read_kaggle(path, with_images),
        "openi": lambda: read_openi(path, with_images),
        "mimic": lambda: read_mimic(path, with_images, labeler),
        "chexpert": lambda: read_chexpert(path, with_images),
        "manifest": lambda: read_manifest(path, with_images, manifest),
    }
    try:
        records = readers[layout]()
    except SourceFormatError as err:
        raise SourceError(str(err)) from None
    if records.reports.empty:
        reasons = sorted({s.reason for s in records.skipped})[:3]
        raise SourceError(
            f"{path}: no readable report in this {layout} source ({'; '.join(reasons) or 'empty'})"
        )
    return records
