"""MIMIC-CXR-JPG v2 as PhysioNet ships it, plus the reports of MIMIC-CXR.

Layout (``files/`` and the tables at the root; the tables may be gzipped, as downloaded)::

    files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg     XX = the first two digits of the subject
    mimic-cxr-2.0.0-metadata.csv   dicom_id, subject_id, study_id, ViewPosition, ...
    mimic-cxr-2.0.0-split.csv      dicom_id, study_id, subject_id, split (train/validate/test)
    mimic-cxr-2.0.0-chexpert.csv   subject_id, study_id + 14 labels (1, 0, -1, blank)
    mimic-cxr-2.0.0-negbio.csv     the same columns, from the NegBio labeler
    mimic-cxr-reports.zip          files/pXX/pNNNNNNNN/sNNNNNNNN.txt (or those .txt unpacked)

One study (``study_id``) is one report with all its images; the patient is ``subject_id``. The
official split is per image and follows patients; it is used with ``prepare.split: official``.
Without reports the source is image-only (``has_reports`` False).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from chestclip.data.findings import CHEXPERT_FINDINGS, diseased_from_findings, parse_label_values
from chestclip.data.records import (
    OFFICIAL_SPLIT,
    Skipped,
    SourceFormatError,
    SourceRecords,
    image_table,
    read_csv_table,
    study_reports,
)
from chestclip.data.report_sections import parse_report_text

PREFIX = "mimic-cxr-2.0.0"
METADATA, SPLIT = f"{PREFIX}-metadata.csv", f"{PREFIX}-split.csv"
LABELS = {"chexpert": f"{PREFIX}-chexpert.csv", "negbio": f"{PREFIX}-negbio.csv"}
REPORTS_ZIP = "mimic-cxr-reports.zip"
METADATA_COLUMNS = ["dicom_id", "subject_id", "study_id", "ViewPosition"]
SPLIT_NAMES = {"train": "train", "validate": "val", "test": "test"}
_REPORT_NAME = re.compile(r"(?:^|/)p(\d+)/s(\d+)\.txt$")


def table_path(root: Path, name: str) -> Path | None:
    """``root/name`` or its gzipped download ``name.gz``, whichever exists."""
    return next((p for p in (root / name, root / f"{name}.gz") if p.is_file()), None)


def is_mimic(path: Path) -> bool:
    return path.is_dir() and table_path(path, METADATA) is not None


def image_file(root: Path, subject_id: str, study_id: str, dicom_id: str) -> Path:
    """Where MIMIC-CXR-JPG keeps one image."""
    return (
        root
        / "files"
        / f"p{subject_id[:2]}"
        / f"p{subject_id}"
        / f"s{study_id}"
        / f"{dicom_id}.jpg"
    )


def iter_report_texts(root: Path) -> Iterator[tuple[str, str, str]]:
    """(study_id, text, where) for every report: members of the zip, else ``files/**/s*.txt``."""
    archive = root / REPORTS_ZIP
    if archive.is_file():
        try:
            with zipfile.ZipFile(archive) as handle:
                for name in handle.namelist():
                    match = _REPORT_NAME.search(name)
                    if match:
                        text = handle.read(name).decode("utf-8", errors="replace")
                        yield match.group(2), text, f"{archive}:{name}"
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise SourceFormatError(f"{archive}: unreadable zip archive: {err}") from None
        return
    for path in sorted((root / "files").glob("p*/p*/s*.txt")):
        yield path.stem[1:], path.read_text(encoding="utf-8", errors="replace"), str(path)


def read_labels(root: Path, labeler: str) -> pd.DataFrame:
    """Raw labels (1/0/−1/NaN) indexed by study_id (str), CheXpert's column order."""
    path = table_path(root, LABELS[labeler])
    if path is None:
        raise SourceFormatError(f"{root}: no {LABELS[labeler]}(.gz): the study labels are missing")
    table = read_csv_table(path, ["subject_id", "study_id", *CHEXPERT_FINDINGS])
    raw = parse_label_values(table[list(CHEXPERT_FINDINGS)], str(path))
    return raw.set_axis(table["study_id"].str.strip()).groupby(level=0).max()


def read_official_split(root: Path) -> pd.Series:
    """The official split per study_id (train/val/test); empty when the file is absent."""
    path = table_path(root, SPLIT)
    if path is None:
        return pd.Series(dtype=str)
    table = read_csv_table(path, ["dicom_id", "study_id", "subject_id", "split"])
    table["split"] = table["split"].str.strip().map(SPLIT_NAMES)
    if table["split"].isna().any():
        raise SourceFormatError(f"{path}: split values must be train, validate or test")
    per_study = table.groupby("study_id")["split"].agg(set)
    mixed = per_study[per_study.map(len) > 1]
    if len(mixed):
        raise SourceFormatError(f"{path}: study {mixed.index[0]} has images in several splits")
    return per_study.map(lambda s: next(iter(s)))


def read_mimic(root: Path, with_images: bool = True, labeler: str = "chexpert") -> SourceRecords:
    """Studies, images, labels and (when present) parsed reports of a MIMIC-CXR-JPG download."""
    metadata_path = table_path(root, METADATA)
    metadata = read_csv_table(metadata_path, METADATA_COLUMNS)
    metadata = metadata.apply(lambda column: column.str.strip())
    labels, official = read_labels(root, labeler), read_official_split(root)
    studies = metadata.drop_duplicates("study_id")[["subject_id", "study_id"]]
    texts = {study: (text, where) for study, text, where in iter_report_texts(root)}
    has_reports = bool(texts)
    reports, skipped = [], []
    for subject, study in zip(studies["subject_id"], studies["study_id"], strict=True):
        text, where = texts.get(study, ("", str(metadata_path)))
        if has_reports and not text:
            skipped.append(Skipped("report", study, "no report text for this study", where))
        elif study not in labels.index:
            skipped.append(Skipped("report", study, f"no labels in {LABELS[labeler]}", where))
        else:
            sections = parse_report_text(text) if text else {}
            reports.append({
                "uid": study, **sections, "label": 0, "file": where, "patient_id": subject,
                "study_id": study, OFFICIAL_SPLIT: official.get(study, ""),
            })  # fmt: skip
    reports = study_reports(reports)
    findings = labels.reindex(reports["uid"]).set_axis(reports["uid"])
    reports["label"] = diseased_from_findings(findings).to_numpy()
    ids = metadata[["subject_id", "study_id", "dicom_id"]].itertuples(index=False)
    files = [str(image_file(root, *row)) if with_images else "" for row in ids]
    images = image_table(
        metadata["dicom_id"], metadata["study_id"], metadata["ViewPosition"], files
    )
    return SourceRecords(
        layout="mimic",
        reports=reports,
        images=images,
        skipped=skipped,
        findings=findings,
        has_reports=has_reports,
    )
