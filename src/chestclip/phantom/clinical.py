"""Phantom studies in the layouts of MIMIC-CXR-JPG, CheXpert and a hospital's manifest CSV.

The studies are those of the IU X-Ray layouts (same plans, pixels and report text); what changes
is the files around them. Consecutive phantom studies share a patient (studies 1 and 2 are
patient 1, 3 and 4 patient 2, ...), so splits by patient are exercised. Labels follow the
CheXpert labeler's conventions: 1 for a drawn finding, 0 for a finding the report negates ("No
pleural effusion"), −1 for pneumonia the report only suspects ("XXXX pneumonia"), blank for
everything not mentioned; No Finding is 1 for a normal study. The NegBio file differs in leaving
suspected pneumonia blank.

``mimic``: ``files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg``, the four ``mimic-cxr-2.0.0-*.csv``
tables with their documented columns, and ``mimic-cxr-reports.zip`` (FINAL REPORT text files,
"___" for de-identified words). ``chexpert``: ``CheXpert-v1.0-small/{train,valid}.csv`` and
JPEGs, plus a CheXpert Plus table ``df_chexpert_plus_240401.csv`` beside the dataset root.
``manifest``: ``manifest.csv`` with a hospital's own column names, mapped by ``manifest.yaml``.
"""

from __future__ import annotations

import hashlib
import io
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from chestclip.data.findings import CHEXPERT_FINDINGS, NO_FINDING
from chestclip.phantom.study import StudyPlan
from chestclip.utils.io import atomic_path, atomic_write_bytes, atomic_write_text

CLINICAL_LAYOUTS = ("mimic", "chexpert", "manifest")
CHEXPERT_ROOT = "CheXpert-v1.0-small"
KIND_FINDINGS = {"cardiomegaly": "Cardiomegaly", "effusion": "Pleural Effusion",
                 "opacity": "Lung Opacity", "nodule": "Lung Lesion"}  # fmt: skip
NEGATIONS = {"Pleural Effusion": ("no pleural effusion", "no effusion", "no xxxx of a pleural"),
             "Pneumothorax": ("no pneumothorax", "no evidence of pneumothorax")}  # fmt: skip
MANIFEST_COLUMNS = {  # ManifestConfig role → the phantom hospital's column name
    "image": "path", "patient_id": "mrn", "study_id": "accession", "report": "report_text",
    "view": "projection", "label": "abnormal",
}  # fmt: skip
MANIFEST_FINDINGS = ("cardiomegaly", "effusion", "opacity", "nodule")  # the phantom's own kinds


@dataclass(frozen=True)
class StudyFiles:
    """Where one phantom study lives in a clinical layout."""

    patient: str
    study: str
    frontal_id: str
    frontal_path: Path
    lateral_id: str | None
    lateral_path: Path | None


def patient_number(uid: int) -> int:
    return (uid + 1) // 2


def _dicom_id(image_id: str) -> str:
    """A MIMIC-style dicom_id: five groups of eight hex digits, fixed by the phantom image id."""
    digest = hashlib.sha1(image_id.encode()).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


def chexpert_folder(uid: int) -> str:
    return "valid" if patient_number(uid) % 10 == 0 else "train"


def study_files(layout: str, plan: StudyPlan) -> StudyFiles:
    """Ids and relative paths of a study's views in ``layout`` (a CLINICAL_LAYOUTS name)."""
    number = patient_number(plan.uid)
    if layout == "mimic":
        subject, study = f"{10_000_000 + number}", f"{50_000_000 + plan.uid}"
        folder = Path("files") / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        ids = [_dicom_id(i) if i else None for i in (plan.frontal_id, plan.lateral_id)]
        paths = [folder / f"{i}.jpg" if i else None for i in ids]
    elif layout == "chexpert":
        subject, study = f"patient{number:05d}", f"study{2 - plan.uid % 2}"
        folder = Path(CHEXPERT_ROOT) / chexpert_folder(plan.uid) / subject / study
        names = ["view1_frontal", "view2_lateral" if plan.lateral_id else None]
        ids = [f"{subject}_{study}_{n}" if n else None for n in names]
        paths = [folder / f"{n}.jpg" if n else None for n in names]
    else:
        subject, study = f"MRN{number:06d}", f"ACC{plan.uid:07d}"
        ids = [plan.frontal_id, plan.lateral_id]
        paths = [Path("images") / subject / study / f"{i}.png" if i else None for i in ids]
    return StudyFiles(subject, study, ids[0], paths[0], ids[1], paths[1])


def phantom_labels(plan: StudyPlan, labeler: str = "chexpert") -> dict[str, float]:
    """The 14 labels of a study as the CheXpert (or NegBio) labeler would write them."""
    labels = dict.fromkeys(CHEXPERT_FINDINGS, np.nan)
    report = plan.report
    text = f"{report.findings} {report.impression}".lower()
    for finding in plan.findings:
        labels[KIND_FINDINGS[finding.kind]] = 1.0
    if any(term.startswith("Consolidation") for term in report.mesh):
        labels["Consolidation"] = 1.0
    for name, phrases in NEGATIONS.items():
        if labels[name] != 1.0 and any(p in text for p in phrases):
            labels[name] = 0.0
    if labeler == "chexpert" and "pneumonia" in text:
        labels["Pneumonia"] = -1.0
    if not plan.findings:
        labels[NO_FINDING] = 1.0
    return labels


def mimic_report(plan: StudyPlan) -> str:
    """The study's report as a MIMIC-CXR text file: FINAL REPORT, upper-case headers, lines
    wrapped at 78 characters and indented by one space, "___" for de-identified words."""
    report = plan.report
    sections = [("EXAMINATION", "CHEST (PA AND LAT)"), ("INDICATION", report.indication),
                ("COMPARISON", report.comparison or "None."), ("FINDINGS", report.findings),
                ("IMPRESSION", report.impression)]  # fmt: skip
    lines = [" " * 33 + "FINAL REPORT"]
    for header, body in sections:
        if not body:
            continue  # real reports lack sections too
        body = body.replace("XXXX", "___")
        if header in ("FINDINGS", "IMPRESSION"):
            lines += [f" {header}:", " "]
            lines += [f" {line}" for line in textwrap.wrap(body, 78)]
        else:
            lines.append(f" {header}:  {body}")
        lines.append(" ")
    return "\n".join(lines) + "\n"


def write_clinical_index(out: Path, layout: str, plans: list[StudyPlan], size: int) -> None:
    """Write the tables (and for MIMIC the report archive) of a clinical layout."""
    writers = {"mimic": _write_mimic, "chexpert": _write_chexpert, "manifest": _write_manifest}
    writers[layout](out, plans, size)


def _views(plan: StudyPlan, files: StudyFiles) -> list[tuple[str, Path, str]]:
    """(image id, path, "Frontal"/"Lateral") of each view the study has."""
    views = [(files.frontal_id, files.frontal_path, "Frontal")]
    if files.lateral_id is not None:
        views.append((files.lateral_id, files.lateral_path, "Lateral"))
    return views


def _write_mimic(out: Path, plans: list[StudyPlan], size: int) -> None:
    metadata, split, labels = [], [], {"chexpert": [], "negbio": []}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as reports:
        for plan in plans:
            files = study_files("mimic", plan)
            number = patient_number(plan.uid)
            part = {0: "test", 1: "validate"}.get(number % 10, "train")
            date = f"21{80 + number % 20:02d}{1 + plan.uid % 12:02d}{1 + plan.uid % 28:02d}"
            for image_id, _, view in _views(plan, files):
                position, meaning = ("PA", "postero-anterior") if view == "Frontal" else (
                    "LATERAL", "lateral")  # fmt: skip
                metadata.append((image_id, files.patient, files.study, "CHEST (PA AND LAT)",
                                 position, size, size, date, "101512.875", "CHEST (PA AND LAT)",
                                 meaning, "Erect"))  # fmt: skip
                split.append((image_id, files.study, files.patient, part))
            for labeler, rows in labels.items():
                values = phantom_labels(plan, labeler)
                rows.append({"subject_id": files.patient, "study_id": files.study, **values})
            name = f"files/p{files.patient[:2]}/p{files.patient}/s{files.study}.txt"
            info = zipfile.ZipInfo(name, date_time=(2019, 1, 1, 0, 0, 0))
            reports.writestr(info, mimic_report(plan))
    atomic_write_bytes(out / "mimic-cxr-reports.zip", archive.getvalue())
    _write_csv(out / "mimic-cxr-2.0.0-metadata.csv", pd.DataFrame(metadata, columns=[
        "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription",
        "ViewPosition", "Rows", "Columns", "StudyDate", "StudyTime",
        "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
        "PatientOrientationCodeSequence_CodeMeaning"]))  # fmt: skip
    _write_csv(
        out / "mimic-cxr-2.0.0-split.csv",
        pd.DataFrame(split, columns=["dicom_id", "study_id", "subject_id", "split"]),
    )
    for labeler, rows in labels.items():  # MIMIC lists the labels alphabetically
        columns = ["subject_id", "study_id", *sorted(CHEXPERT_FINDINGS)]
        _write_csv(out / f"mimic-cxr-2.0.0-{labeler}.csv", pd.DataFrame(rows)[columns])


def _write_chexpert(out: Path, plans: list[StudyPlan], size: int) -> None:
    tables: dict[str, list[dict]] = {"train": [], "valid": []}
    plus = []
    for plan in plans:
        files = study_files("chexpert", plan)
        number = patient_number(plan.uid)
        sex, age = ("Female", "Male")[number % 2], 20 + (number * 7) % 60
        for _, path, view in _views(plan, files):
            tables[chexpert_folder(plan.uid)].append({
                "Path": path.as_posix(), "Sex": sex, "Age": age, "Frontal/Lateral": view,
                "AP/PA": "PA" if view == "Frontal" else "", **phantom_labels(plan),
            })  # fmt: skip
            report = plan.report
            plus.append({
                "path_to_image": path.relative_to(CHEXPERT_ROOT).as_posix(),
                "path_to_dcm": path.relative_to(CHEXPERT_ROOT).with_suffix(".dcm").as_posix(),
                "frontal_lateral": view, "ap_pa": "PA" if view == "Frontal" else "",
                "deid_patient_id": files.patient, "patient_report_date_order": files.study[5:],
                "report": " ".join(s for s in (report.indication, report.findings,
                                                report.impression) if s),
                "section_narrative": "", "section_clinical_history": report.indication,
                "section_history": "", "section_comparison": report.comparison,
                "section_technique": "", "section_procedure_comments": "",
                "section_findings": report.findings, "section_impression": report.impression,
                "section_end_of_impression": "", "section_summary": "",
                "section_accession_number": "", "age": age, "sex": sex,
                "split": chexpert_folder(plan.uid),
            })  # fmt: skip
    for name, rows in tables.items():
        columns = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_FINDINGS]
        _write_csv(out / CHEXPERT_ROOT / f"{name}.csv", pd.DataFrame(rows, columns=columns))
    _write_csv(out / "df_chexpert_plus_240401.csv", pd.DataFrame(plus))


def _write_manifest(out: Path, plans: list[StudyPlan], size: int) -> None:
    rows = []
    for plan in plans:
        files = study_files("manifest", plan)
        report = plan.report
        text = "\n".join(f"{header}: {body}" for header, body in (
            ("INDICATION", report.indication), ("FINDINGS", report.findings),
            ("IMPRESSION", report.impression)) if body)  # fmt: skip
        kinds = {finding.kind for finding in plan.findings}
        for _, path, view in _views(plan, files):
            rows.append({
                "path": path.as_posix(), "mrn": files.patient, "accession": files.study,
                "report_text": text, "projection": "PA" if view == "Frontal" else "LAT",
                "abnormal": plan.label, **{k: int(k in kinds) for k in MANIFEST_FINDINGS},
            })  # fmt: skip
    _write_csv(out / "manifest.csv", pd.DataFrame(rows))
    mapping = "".join(f"{role}: {column}\n" for role, column in MANIFEST_COLUMNS.items())
    findings = ", ".join(MANIFEST_FINDINGS)
    atomic_write_text(out / "manifest.yaml", f"{mapping}finding_columns: [{findings}]\n")


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
