"""A manifest CSV: one row per image, the way a hospital's own export comes in.

Columns (names configurable, ``chestclip.config.ManifestConfig``; defaults in brackets): the
image path [image] (relative to the CSV's folder, or absolute), the patient [patient_id], the
study [study_id; absent: each image is its own study], the report as one text [report] and/or
its sections [indication, findings, impression, comparison], the view [view: PA/AP/frontal or
lateral/LL], normal (0) vs diseased (1) [label; absent: derived from the findings], an official
split [split: train/val/test] and any finding columns with values 1/0/−1/blank [finding_columns;
default: the CheXpert label names present]. The column map may also sit beside the CSV as
``<name>.yaml`` (the same keys); the prepare config's ``manifest`` section wins over it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml

from chestclip.config import ManifestConfig
from chestclip.data.findings import (
    CHEXPERT_FINDINGS,
    combine_per_study,
    diseased_from_findings,
    parse_label_values,
)
from chestclip.data.records import (
    OFFICIAL_SPLIT,
    SECTIONS,
    SourceFormatError,
    SourceRecords,
    image_table,
    read_csv_table,
    study_reports,
)
from chestclip.data.report_sections import parse_report_text

MANIFEST_NAME = "manifest.csv"
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validate": "val",
               "validation": "val", "test": "test"}  # fmt: skip
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def manifest_file(path: Path) -> Path | None:
    """The manifest CSV ``path`` names: the file itself, or ``manifest.csv`` in a folder."""
    if path.is_file() and path.suffix.lower() == ".csv":
        return path
    return path / MANIFEST_NAME if path.is_dir() and (path / MANIFEST_NAME).is_file() else None


def is_manifest(path: Path) -> bool:
    return manifest_file(path) is not None


def column_map(csv: Path, configured: ManifestConfig) -> ManifestConfig:
    """The configured columns over those of a ``<csv stem>.yaml`` beside the CSV, if any."""
    sidecar = csv.with_suffix(".yaml")
    if not sidecar.is_file():
        return configured
    try:
        beside = ManifestConfig.model_validate(yaml.safe_load(sidecar.read_text()) or {})
    except (yaml.YAMLError, ValueError) as err:
        raise SourceFormatError(
            f"{sidecar}: not a column map: {str(err).splitlines()[0]}"
        ) from None
    chosen = configured.model_dump(exclude_defaults=True)
    return beside.model_copy(update=chosen)


def _present(table: pd.DataFrame, columns: ManifestConfig, csv: Path) -> dict[str, str]:
    """Role → column for every role whose column the table has; an explicitly configured column
    that is missing is an error, a default name that is missing means "absent"."""
    defaults = ManifestConfig()
    present = {}
    for role, name in columns.model_dump(exclude={"finding_columns"}).items():
        if name is None:
            continue
        if name in table.columns:
            present[role] = name
        elif name != getattr(defaults, role) or role in ("image", "patient_id"):
            raise SourceFormatError(f"{csv}: no column {name!r} (the {role} column)")
    return present


def finding_columns(table: pd.DataFrame, columns: ManifestConfig, csv: Path) -> list[str]:
    if columns.finding_columns is None:
        return [c for c in table.columns if c in CHEXPERT_FINDINGS]
    missing = [c for c in columns.finding_columns if c not in table.columns]
    if missing:
        raise SourceFormatError(f"{csv}: finding column(s) {missing} not in the CSV")
    return list(columns.finding_columns)


def image_ids(paths: pd.Series) -> pd.Series:
    """File stems when they are unique, else the relative paths made file-name safe."""
    stems = paths.map(lambda p: Path(p).stem)
    if not stems.duplicated().any():
        return stems
    return paths.map(lambda p: _UNSAFE.sub("_", str(Path(p).with_suffix(""))).strip("_"))


def read_manifest(
    source: Path, with_images: bool = True, columns: ManifestConfig | None = None
) -> SourceRecords:
    """Studies, images, findings and report sections of a manifest CSV."""
    csv = manifest_file(source)
    columns = column_map(csv, columns or ManifestConfig())
    table = read_csv_table(csv, [columns.image])
    table = table.apply(lambda column: column.str.strip())
    role = _present(table, columns, csv)
    names = finding_columns(table, columns, csv)
    if "label" not in role and not names:
        raise SourceFormatError(
            f"{csv}: needs a label column ({columns.label!r}) or finding columns"
        )
    ids = image_ids(table[columns.image])
    study = table[role["study_id"]] if "study_id" in role else ids
    owners = table.assign(_study=study).groupby("_study")[role["patient_id"]].nunique()
    if (owners > 1).any():
        raise SourceFormatError(f"{csv}: study {owners.idxmax()!r} belongs to several patients")
    raw = parse_label_values(table[names], str(csv)) if names else None
    findings = combine_per_study(raw, study) if raw is not None else None
    if "label" in role:
        labels = pd.to_numeric(table[role["label"]], errors="coerce")
        if not labels.isin((0, 1)).all():
            raise SourceFormatError(f"{csv}: column {role['label']!r} must hold 0 or 1 everywhere")
        label_of = labels.groupby(study.to_numpy()).max()
    else:
        label_of = diseased_from_findings(findings)
    firsts = table.assign(_study=study).groupby("_study", sort=True).first()
    reports = [
        {"uid": uid, **_sections(row, role), "label": int(label_of[uid]), "file": str(csv),
         "patient_id": row[role["patient_id"]], "study_id": uid,
         OFFICIAL_SPLIT: SPLIT_NAMES.get(row.get(role.get("split"), "").lower(), "")}
        for uid, row in zip(firsts.index, firsts.to_dict("records"), strict=True)
    ]  # fmt: skip
    views = table[role["view"]] if "view" in role else [""] * len(table)
    files = [str(csv.parent / p) if p and with_images else "" for p in table[columns.image]]
    return SourceRecords(
        layout="manifest",
        reports=study_reports(reports),
        images=image_table(ids, study, views, files),
        findings=findings,
        has_reports=any(name in role for name in ("report", *SECTIONS)),
    )


def _sections(row: dict, role: dict[str, str]) -> dict[str, str]:
    """A study's sections: its section columns, gaps filled from its whole-report column."""
    whole = row.get(role.get("report", ""), "")
    parsed = parse_report_text(whole) if whole else {}
    own = {name: " ".join(row.get(role.get(name, ""), "").split()) for name in SECTIONS}
    return {name: own[name] or parsed.get(name, "") for name in SECTIONS}
