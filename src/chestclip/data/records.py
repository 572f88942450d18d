"""What a source reader returns: report and image tables plus everything it had to leave out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

SECTIONS = ("indication", "comparison", "findings", "impression")
REPORT_COLUMNS = ["uid", *SECTIONS, "mesh", "problems", "label", "file"]
IMAGE_COLUMNS = ["image_id", "uid", "projection", "file"]
FRONTAL, LATERAL, UNKNOWN = "Frontal", "Lateral", "unknown"
# Optional report columns and what they default to: IU X-Ray has one report per patient, so its
# uid is both; sources with an official split fill ``official_split`` (train/val/test).
IDENTITY_COLUMNS = ("patient_id", "study_id")
OFFICIAL_SPLIT = "official_split"


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
    ``images``: one row per image reference (IMAGE_COLUMNS; ``file`` is where its bytes are).
    """

    layout: str
    reports: pd.DataFrame
    images: pd.DataFrame
    skipped: list[Skipped] = field(default_factory=list)
    archive: str | None = None  # set when image files are members of this tar archive
    # raw multi-label findings per uid (1/0/−1/NaN, ``chestclip.data.findings``); None: derive
    # them from the MeSH terms, where the source has them
    findings: pd.DataFrame | None = None
    has_reports: bool = True  # False: image-only (CheXpert without CheXpert Plus)


def with_identity(reports: pd.DataFrame) -> pd.DataFrame:
    """``reports`` with ``patient_id``, ``study_id`` and ``official_split`` columns, defaulting to
    the uid (one report = one study = one patient, as in IU X-Ray) and no official split."""
    defaults = {"patient_id": reports["uid"], "study_id": reports["uid"], OFFICIAL_SPLIT: ""}
    return reports.assign(**{k: v for k, v in defaults.items() if k not in reports.columns})
