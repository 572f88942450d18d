"""What a source reader returns: report and image tables plus everything it had to leave out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

SECTIONS = ("indication", "comparison", "findings", "impression")
REPORT_COLUMNS = ["uid", *SECTIONS, "mesh", "problems", "label", "file"]
IMAGE_COLUMNS = ["image_id", "uid", "projection", "projection_source", "file"]
FRONTAL, LATERAL, UNKNOWN = "Frontal", "Lateral", "unknown"
# where an image's projection came from: a per-image table of the download, the pixels and the
# study's other view (``chestclip.data.views``), or nowhere (projection unknown)
METADATA, INFERRED, NO_SOURCE = "metadata", "inferred", "none"
# Optional report columns (``with_identity`` defaults them): IU X-Ray has one report per patient,
# so its uid is both; sources with an official split fill ``official_split`` (train/val/test).
OFFICIAL_SPLIT = "official_split"
STUDY_REPORT_COLUMNS = [*REPORT_COLUMNS, "patient_id", "study_id", OFFICIAL_SPLIT]
# view names of MIMIC-CXR's ViewPosition, CheXpert's Frontal/Lateral and hospital exports
VIEW_NAMES = {"PA": FRONTAL, "AP": FRONTAL, "FRONTAL": FRONTAL, "LATERAL": LATERAL,
              "LL": LATERAL, "RL": LATERAL, "LAT": LATERAL, "XTABLE LATERAL": LATERAL}  # fmt: skip


class SourceFormatError(ValueError):
    """A source file that cannot be read as a whole (missing columns, broken CSV quoting)."""


def read_csv_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """A CSV (or .csv.gz) as strings, empty cells as ""; SourceFormatError naming the file when
    it cannot be parsed or lacks one of ``columns``."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SourceFormatError(f"{path}: unreadable CSV: {first_line}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SourceFormatError(f"{path}: missing column(s) {missing}")
    return table


@dataclass(frozen=True)
class Skipped:
    """One report or image left out of the dataset, and why."""

    kind: str  # "report" | "image"
    id: str
    reason: str
    file: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id, "reason": self.reason, "file": self.file}


@dataclass
class SourceRecords:
    """Parsed reports and image references of one source, before images are decoded.

    ``reports``: one row per parsed report (REPORT_COLUMNS; ``mesh``/``problems`` ';'-joined).
    ``images``: one row per image reference (IMAGE_COLUMNS; ``file`` is where its bytes are,
    ``projection_source`` where its projection came from).
    """

    layout: str
    reports: pd.DataFrame
    images: pd.DataFrame
    skipped: list[Skipped] = field(default_factory=list)
    archive: str | None = None  # set when image files are members of this tar archive
    # what makes the source as a whole incomplete (a truncated archive), one line each
    problems: list[str] = field(default_factory=list)
    # raw multi-label findings per uid (1/0/−1/NaN, ``chestclip.data.findings``); None: derive
    # them from the MeSH terms, where the source has them
    findings: pd.DataFrame | None = None
    has_reports: bool = True  # False: image-only (CheXpert without CheXpert Plus)


def study_reports(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """STUDY_REPORT_COLUMNS from report dicts of a source with patient and study ids; sections,
    MeSH terms, problems and the official split default to ""."""
    defaults = dict.fromkeys([*SECTIONS, "mesh", "problems", OFFICIAL_SPLIT], "")
    return pd.DataFrame([{**defaults, **row} for row in rows], columns=STUDY_REPORT_COLUMNS)


def image_table(
    image_ids: Iterable[str], uids: Iterable[str], views: Iterable[str], files: Iterable[str]
) -> pd.DataFrame:
    """IMAGE_COLUMNS from parallel sequences; the source's view names (VIEW_NAMES, any case)
    become Frontal or Lateral from the source's metadata, anything else unknown (no source)."""
    projections = [VIEW_NAMES.get(str(view).strip().upper(), UNKNOWN) for view in views]
    origins = [METADATA if p != UNKNOWN else NO_SOURCE for p in projections]
    columns = (list(image_ids), list(uids), projections, origins, list(files))
    return pd.DataFrame(dict(zip(IMAGE_COLUMNS, columns, strict=True)), columns=IMAGE_COLUMNS)


def with_identity(reports: pd.DataFrame) -> pd.DataFrame:
    """``reports`` with ``patient_id``, ``study_id`` and ``official_split`` columns, defaulting to
    the uid (one report = one study = one patient, as in IU X-Ray) and no official split."""
    defaults = {"patient_id": reports["uid"], "study_id": reports["uid"], OFFICIAL_SPLIT: ""}
    return reports.assign(**{k: v for k, v in defaults.items() if k not in reports.columns})
