"""CheXpert v1.0 (full or ``-small``) as Stanford ships it, with CheXpert Plus reports if present.

Layout: ``CheXpert-v1.0[-small]/{train,valid}.csv`` with columns ``Path, Sex, Age,
Frontal/Lateral, AP/PA`` and the 14 labels (1, 0, −1, blank); ``Path`` reads
``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg``, relative to the folder
ABOVE the dataset root. Patient and study come from the path; labels are per image and combined
per study (``chestclip.data.findings.combine_per_study``).

Reports (CheXpert Plus): a table ``df_chexpert_plus_*.csv`` in the dataset root or the folder
above it. ASSUMED from the CheXpert Plus release (not verifiable offline): columns
``path_to_image`` (``train/patient00001/study1/view1_frontal.jpg``, relative to the dataset
root), ``section_findings``, ``section_impression``, ``section_clinical_history``,
``section_history`` and ``section_comparison``. Without it the source is image-only
(``has_reports`` False): images and labels, no text. CheXpert has no official test split here
(valid.csv is a validation set): split by fractions.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pandas as pd

from chestclip.data.findings import (
    CHEXPERT_FINDINGS,
    combine_per_study,
    diseased_from_findings,
    parse_label_values,
)
from chestclip.data.records import (
    Skipped,
    SourceRecords,
    image_table,
    read_csv_table,
    study_reports,
)

TABLES = ("train.csv", "valid.csv")
ROOT_NAMES = ("CheXpert-v1.0-small", "CheXpert-v1.0")
COLUMNS = ["Path", "Frontal/Lateral", *CHEXPERT_FINDINGS]
PLUS_PATTERN = "df_chexpert_plus_*.csv"
PLUS_SECTIONS = {  # report section → CheXpert Plus columns joined into it
    "indication": ("section_clinical_history", "section_history"),
    "comparison": ("section_comparison",),
    "findings": ("section_findings",),
    "impression": ("section_impression",),
}
_STUDY = re.compile(r"(patient\d+)/(study\d+)/([^/]+?)(?:\.\w+)?$")


def dataset_root(path: Path) -> Path | None:
    """The folder holding train.csv/valid.csv: ``path`` itself or a CheXpert-v1.0* inside it."""
    for candidate in (path, *(path / name for name in ROOT_NAMES)):
        if candidate.is_dir() and any((candidate / t).is_file() for t in TABLES):
            header = next(candidate / t for t in TABLES if (candidate / t).is_file())
            with header.open(encoding="utf-8", errors="replace") as handle:
                if "Frontal/Lateral" in handle.readline():
                    return candidate
    return None


def is_chexpert(path: Path) -> bool:
    return path.is_dir() and dataset_root(path) is not None


def study_key(path: str) -> tuple[str, str, str] | None:
    """(patient, study, view) of an image path, e.g. ('patient00001', 'study1', 'view1_frontal')."""
    match = _STUDY.search(path.replace("\\", "/"))
    return match.groups() if match else None


def image_file(root: Path, path: str) -> Path:
    """Where an image is: ``Path`` is relative to the folder above ``root``, whatever its name."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return root.joinpath(*(parts[1:] if parts and parts[0].startswith("CheXpert") else parts))


def read_plus_reports(root: Path) -> tuple[dict[tuple[str, str], dict[str, str]], str]:
    """Report sections per (patient, study) from a CheXpert Plus table, and the table's path;
    ({}, "") when there is none."""
    tables = sorted(root.glob(PLUS_PATTERN)) or sorted(root.parent.glob(PLUS_PATTERN))
    if not tables:
        return {}, ""
    columns = sorted({c for group in PLUS_SECTIONS.values() for c in group})
    table = read_csv_table(tables[-1], ["path_to_image", *columns])
    reports: dict[tuple[str, str], dict[str, str]] = {}
    for row in table.to_dict("records"):
        key = study_key(row["path_to_image"])
        if key is None or key[:2] in reports:
            continue
        sections = {
            name: " ".join(" ".join(row[c] for c in group).split())
            for name, group in PLUS_SECTIONS.items()
        }
        if any(sections.values()):
            reports[key[:2]] = sections
    return reports, str(tables[-1])


def read_chexpert(source: Path, with_images: bool = True) -> SourceRecords:
    """Images and per-study labels of every row of train.csv and valid.csv; reports when the
    CheXpert Plus table is present."""
    root = dataset_root(source)
    rows, skipped = [], []
    for name in TABLES:
        path = root / name
        if not path.is_file():
            continue
        table = read_csv_table(path, COLUMNS)
        raw = parse_label_values(table[list(CHEXPERT_FINDINGS)], str(path))
        for line, (image_path, view, labels) in enumerate(
            zip(table["Path"], table["Frontal/Lateral"], raw.to_dict("records"), strict=True),
            start=2,
        ):
            key = study_key(image_path)
            if key is None:
                reason = f"malformed row {line}: path {image_path!r} names no patient/study"
                skipped.append(Skipped("image", image_path, reason, str(path)))
                continue
            rows.append((*key, view, image_path, labels))
    plus, plus_file = read_plus_reports(root)
    uids = [f"{patient}_{study}" for patient, study, *_ in rows]
    images = image_table(
        [f"{uid}_{row[2]}" for uid, row in zip(uids, rows, strict=True)], uids,
        [row[3] for row in rows],
        [str(image_file(root, row[4])) if with_images else "" for row in rows],
    )  # fmt: skip
    labels = pd.DataFrame([row[5] for row in rows], columns=CHEXPERT_FINDINGS)
    findings = combine_per_study(labels, uids)
    reports = []
    for uid in findings.index:
        patient, study = uid.split("_")
        sections = plus.get((patient, study))
        if plus and sections is None:
            reason = "no report in the CheXpert Plus table"
            skipped.append(Skipped("report", uid, reason, plus_file))
            continue
        reports.append({
            "uid": uid, **(sections or {}), "label": 0, "file": plus_file or str(root),
            "patient_id": patient, "study_id": uid,
        })  # fmt: skip
    reports = study_reports(reports)
    findings = findings.loc[reports["uid"]]
    reports["label"] = diseased_from_findings(findings).to_numpy()
    return SourceRecords(
        layout="chexpert",
        reports=reports,
        images=images,
        skipped=skipped,
        findings=findings,
        has_reports=bool(plus),
    )
