"""MIMIC-CXR-JPG on a small hand-made download, written from the format's documentation.

Documented facts encoded (PhysioNet MIMIC-CXR-JPG v2.0.0/v2.1.0 and MIMIC-CXR v2.0.0 pages):
- images at ``files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg``, XX the subject's first two digits;
  dicom_ids are five dash-joined groups of eight hex digits;
- the tables ship gzipped (``mimic-cxr-2.0.0-metadata.csv.gz`` ...); metadata columns dicom_id,
  subject_id, study_id, PerformedProcedureStepDescription, ViewPosition, Rows, Columns,
  StudyDate, StudyTime, ProcedureCodeSequence_CodeMeaning, ViewCodeSequence_CodeMeaning,
  PatientOrientationCodeSequence_CodeMeaning; ViewPosition PA, AP, LATERAL, LL, others, blank;
- split columns dicom_id, study_id, subject_id, split with values train/validate/test;
- chexpert/negbio columns subject_id, study_id and the 14 labels in alphabetical order, values
  1.0, 0.0, -1.0 or blank;
- reports in ``mimic-cxr-reports.zip`` as ``files/pXX/pNNNNNNNN/sNNNNNNNN.txt``: "FINAL REPORT",
  upper-case "HEADER:" lines, wrapped text, "___" de-identification, optional WET READ preamble.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chestclip.config import PrepareConfig
from chestclip.data import PreparedData, prepare_dataset
from chestclip.data.findings import CHEXPERT_FINDINGS
from chestclip.data.sources import SourceError, detect_layout, read_source

DICOM = {  # dicom_id → (subject_id, study_id, ViewPosition, split)
    "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014": ("10000032", "50414267", "PA", "train"),
    "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962": ("10000032", "50414267", "LATERAL", "train"),
    "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab": ("10000032", "53189527", "AP", "train"),
    "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714": ("10000764", "57375967", "AP AXIAL",
                                                     "validate"),
    "096052b7-d256dc40-453a102b-fa7d01c6-1b22c6b4": ("10000898", "50771383", "", "test"),
}  # fmt: skip
LABELS = {  # study_id → {label: value}; every other label blank
    "50414267": {"No Finding": "1.0"},
    "53189527": {"Pleural Effusion": "1.0", "Atelectasis": "-1.0", "Pneumothorax": "0.0"},
    "57375967": {"Support Devices": "1.0", "No Finding": "1.0"},
    "50771383": {"Edema": "-1.0", "Cardiomegaly": "1.0"},
}
REPORTS = {
    "50414267": [
        "                                 FINAL REPORT",
        " EXAMINATION:  CHEST (PA AND LAT)",
        " ",
        " INDICATION:  ___F with new onset ascites  // eval for infection",
        " ",
        " COMPARISON:  None.",
        " ",
        " FINDINGS: ",
        " ",
        " No focal consolidation, pleural effusion or pneumothorax.  Heart size",
        " is normal.",
        " ",
        " IMPRESSION: ",
        " ",
        " No acute cardiopulmonary process.",
    ],
    "53189527": [
        " WET READ: ___ ___ ___ 8:12 AM",
        "  Small right effusion.",
        "                                 FINAL REPORT",
        " HISTORY:  ___-year-old woman with shortness of breath.",
        " ",
        " FINDINGS:  Small right pleural effusion with adjacent atelectasis.",
    ],
    "57375967": [
        "                                 FINAL REPORT",
        " REASON FOR EXAM:  Line placement.",
        " ",
        " IMPRESSION:  Right PICC terminates in the low SVC.",
    ],
    "50771383": [
        "                                 FINAL REPORT",
        " INDICATION:  Dyspnea.",
        " ",
        " FINDINGS:  Heart size is enlarged. Possible mild interstitial edema.",
    ],
}  # fmt: skip
METADATA_COLUMNS = [
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
    "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning",
]  # fmt: skip


def _write_gz(path: Path, table: pd.DataFrame) -> None:
    with gzip.open(path, "wt", newline="") as handle:
        table.to_csv(handle, index=False)


def write_mimic(root: Path, report_studies=tuple(REPORTS), label_studies=tuple(LABELS)) -> Path:
    """The hand-made download: gzipped tables, JPEGs, a reports zip."""
    root.mkdir(parents=True)
    metadata, split = [], []
    for number, (dicom, (subject, study, view, part)) in enumerate(DICOM.items()):
        procedure = "CHEST (PA AND LAT)"
        metadata.append((dicom, subject, study, procedure, view, 64, 48, 21800506, 213014.531,
                         procedure, "postero-anterior", "Erect"))  # fmt: skip
        split.append((dicom, study, subject, part))
        folder = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.full((64, 48), 40 * number, np.uint8)
        Image.fromarray(pixels).save(folder / f"{dicom}.jpg", quality=95)
    _write_gz(
        root / "mimic-cxr-2.0.0-metadata.csv.gz", pd.DataFrame(metadata, columns=METADATA_COLUMNS)
    )
    _write_gz(
        root / "mimic-cxr-2.0.0-split.csv.gz",
        pd.DataFrame(split, columns=["dicom_id", "study_id", "subject_id", "split"]),
    )
    subject_of = {study: subject for subject, study, _, _ in DICOM.values()}
    for labeler in ("chexpert", "negbio"):
        blank = dict.fromkeys(sorted(CHEXPERT_FINDINGS), "")
        rows = [
            {"subject_id": subject_of[s], "study_id": s, **blank,
             **(LABELS[s] if labeler == "chexpert" else {})}
            for s in label_studies
        ]  # fmt: skip
        _write_gz(root / f"mimic-cxr-2.0.0-{labeler}.csv.gz", pd.DataFrame(rows))
    with zipfile.ZipFile(root / "mimic-cxr-reports.zip", "w") as archive:
        for study in report_studies:
            subject = subject_of[study]
            text = "\n".join(REPORTS[study]) + "\n"
            archive.writestr(f"files/p{subject[:2]}/p{subject}/s{study}.txt", text)
    return root


@pytest.fixture
def mimic(tmp_path: Path) -> Path:
    return write_mimic(tmp_path / "mimic-cxr-jpg")


def test_reads_studies_images_reports_and_labels(mimic):
    assert detect_layout(mimic) == "mimic"
    records = read_source(mimic)
    reports = records.reports.set_index("uid")
    assert list(reports.index) == ["50414267", "53189527", "57375967", "50771383"]
    assert reports["patient_id"].tolist() == ["10000032", "10000032", "10000764", "10000898"]
    assert (
        reports.loc["50414267", "indication"] == "___F with new onset ascites // eval for infection"
    )
    assert reports.loc["50414267", "impression"] == "No acute cardiopulmonary process."
    assert reports.loc["53189527", "indication"] == "___-year-old woman with shortness of breath."
    assert reports.loc["53189527", "impression"] == ""  # missing section
    assert reports.loc["57375967", "indication"] == "Line placement."
    assert reports["official_split"].tolist() == ["train", "train", "val", "test"]
    # normal: No Finding only, or devices only; diseased: a positive or uncertain pathology
    assert reports["label"].tolist() == [0, 1, 0, 1]
    assert records.findings.loc["53189527", "Atelectasis"] == -1
    assert np.isnan(records.findings.loc["53189527", "Edema"])
    images = records.images.set_index("image_id")
    assert images["projection"].tolist() == ["Frontal", "Lateral", "Frontal", "unknown", "unknown"]
    assert all(Path(f).is_file() for f in images["file"])
    assert records.has_reports


def test_negbio_labels_are_chosen_on_request(mimic):
    records = read_source(mimic, labeler="negbio")
    assert records.findings.isna().all().all()


def test_studies_without_report_or_labels_are_skipped_and_listed(tmp_path):
    root = write_mimic(tmp_path / "m", report_studies=("50414267", "53189527", "57375967"),
                       label_studies=("50414267", "53189527", "50771383"))  # fmt: skip
    records = read_source(root)
    assert records.reports["uid"].tolist() == ["50414267", "53189527"]
    reasons = {s.id: s.reason for s in records.skipped}
    assert reasons == {"57375967": "no labels in mimic-cxr-2.0.0-chexpert.csv",
                       "50771383": "no report text for this study"}  # fmt: skip


def test_without_reports_the_source_is_image_only(mimic):
    (mimic / "mimic-cxr-reports.zip").unlink()
    records = read_source(mimic)
    assert not records.has_reports and len(records.reports) == 4
    assert (records.reports["findings"] == "").all()


def test_missing_label_file_is_one_clear_error(mimic):
    (mimic / "mimic-cxr-2.0.0-chexpert.csv.gz").unlink()
    with pytest.raises(SourceError, match=r"no mimic-cxr-2\.0\.0-chexpert\.csv\(\.gz\)"):
        read_source(mimic)


def test_prepare_with_the_official_split(mimic, tmp_path):
    config = PrepareConfig(image_size=32, split="official", workers=1)
    summary = prepare_dataset(mimic, tmp_path / "p", config).counts
    assert (summary["layout"], summary["studies"], summary["patients"]) == ("mimic", 4, 3)
    assert summary["splits"]["train"] == {"patients": 1, "studies": 2, "images": 3, "normal": 1,
                                          "diseased": 1}  # fmt: skip
    data = PreparedData(tmp_path / "p")
    assert data.images.groupby("patient_id")["split"].nunique().max() == 1
    assert data.finding_names == list(CHEXPERT_FINDINGS)
    # uncertain ignored (masked), missing → 0 (the defaults)
    assert np.isnan(data.findings.loc["53189527", "Atelectasis"])
    assert data.findings.loc["53189527", "Edema"] == 0
    assert summary["findings"]["Atelectasis"]["uncertain"] == 1


def test_prepare_label_policies(mimic, tmp_path):
    config = PrepareConfig(images=False, uncertain="ones", missing="ignore")
    prepare_dataset(mimic, tmp_path / "p", config)
    findings = PreparedData(tmp_path / "p").findings
    assert findings.loc["53189527", "Atelectasis"] == 1
    assert np.isnan(findings.loc["53189527", "Edema"])
