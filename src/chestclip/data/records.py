"""What a source reader returns: report and image tables plus everything it had to leave out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

SECTIONS = ("indication", "comparison", "findings", "impression")
REPORT_COLUMNS = ["uid", *SECTIONS, "mesh", "problems", "label", "file"]
IMAGE_COLUMNS = ["image_id", "uid", "projection", "projection_source", "file"]
FRONTAL, LATERAL, UNKNOWN = "Frontal", "Lateral", "unknown"
# where an image's projection came from: a per-image table of the download, the pixels and the
# study's other view (``chestclip.data.views``), or nowhere (projection unknown)
METADATA, INFERRED, NO_SOURCE = "metadata", "inferred", "none"


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
