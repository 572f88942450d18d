"""The Kaggle layout ("chest-xrays-indiana-university"): ``indiana_reports.csv``,
``indiana_projections.csv`` and ``images/images_normalized/<uid>_IM-xxxx-xxxx.dcm.png``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from chestclip.data.labels import UnlabelledReport, label_from_terms
from chestclip.data.records import (
    FRONTAL,
    IMAGE_COLUMNS,
    LATERAL,
    METADATA,
    NO_SOURCE,
    REPORT_COLUMNS,
    SECTIONS,
    UNKNOWN,
    Skipped,
    SourceRecords,
    read_csv_table,
)

REPORTS_CSV, PROJECTIONS_CSV = "indiana_reports.csv", "indiana_projections.csv"
REPORT_FIELDS = ["uid", "MeSH", "Problems", "indication", "comparison", "findings", "impression"]
IMAGE_DIRS = ("images/images_normalized", "images_normalized", "images", ".")


def is_kaggle(path: Path) -> bool:
    return path.is_dir() and (path / REPORTS_CSV).is_file()


def canonical_id(filename: str) -> str:
    """``1_IM-0001-4001.dcm.png`` → ``1_IM-0001-4001`` (the OpenI id without ``CXR``)."""
    name = Path(filename).name
    for suffix in (".dcm.png", ".png", ".jpg", ".jpeg"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _image_path(folder: Path, filename: str) -> str:
    for sub in IMAGE_DIRS:
        candidate = folder / sub / filename
        if candidate.is_file():
            return str(candidate)
    return ""


def read_kaggle(source: Path, with_images: bool = True) -> SourceRecords:
    """Parse both CSVs; a malformed row is skipped and listed, never fatal."""
    reports_path, projections_path = source / REPORTS_CSV, source / PROJECTIONS_CSV
    table = read_csv_table(reports_path, REPORT_FIELDS)
    reports, skipped = [], []
    for line, row in enumerate(table.itertuples(index=False), start=2):
        uid = str(row.uid).strip()
        if not uid.isdigit():
            skipped.append(
                Skipped(
                    "report",
                    uid or f"line {line}",
                    f"malformed row {line}: uid {uid!r} is not a number",
                    str(reports_path),
                )
            )
            continue
        try:
            label = label_from_terms(str(row.Problems).split(";"))
        except UnlabelledReport as err:
            skipped.append(Skipped("report", uid, str(err), str(reports_path)))
            continue
        except ValueError as err:
            skipped.append(
                Skipped("report", uid, f"malformed row {line}: {err}", str(reports_path))
            )
            continue
        sections = {f: getattr(row, f).strip() for f in SECTIONS}
        reports.append({
            "uid": uid, **sections, "mesh": row.MeSH.strip(), "problems": row.Problems.strip(),
            "label": label, "file": str(reports_path),
        })  # fmt: skip
    images = []
    if projections_path.is_file():
        projections = read_csv_table(projections_path, ["uid", "filename", "projection"])
        for row in projections.itertuples(index=False):
            projection = row.projection.strip().capitalize()
            known = projection in (FRONTAL, LATERAL)
            images.append([
                canonical_id(row.filename), str(row.uid).strip(),
                projection if known else UNKNOWN, METADATA if known else NO_SOURCE,
                _image_path(source, row.filename) if with_images else "",
            ])  # fmt: skip
    return SourceRecords(
        layout="kaggle",
        reports=pd.DataFrame(reports, columns=REPORT_COLUMNS),
        images=pd.DataFrame(images, columns=IMAGE_COLUMNS),
        skipped=skipped,
    )
