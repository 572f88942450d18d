"""Phantom MIMIC-CXR-JPG, CheXpert and manifest layouts: the documented files, read back by
``prepare`` into the same studies, patients, labels and findings."""

from __future__ import annotations

import re
import zipfile

import pandas as pd
import pytest
from PIL import Image

from chestclip.config import PrepareConfig
from chestclip.data import PreparedData, prepare_dataset
from chestclip.data.findings import CHEXPERT_FINDINGS
from chestclip.phantom import generate_phantoms

STUDIES = 12
MIMIC_IMAGE = re.compile(r"^files/p1\d/p1\d{7}/s5\d{7}/[0-9a-f]{8}(-[0-9a-f]{8}){4}\.jpg$")


@pytest.fixture(scope="module", params=["mimic", "chexpert", "manifest"])
def layout_and_prepared(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    phantom = generate_phantoms(root / "source", STUDIES, 64, request.param, seed=2)
    prepared = prepare_dataset(phantom.out, root / "prepared", PrepareConfig(image_size=32))
    return request.param, phantom.out, PreparedData(prepared.out)


def test_prepare_reads_back_every_study_patient_and_label(layout_and_prepared):
    layout, source, data = layout_and_prepared
    assert data.summary["layout"] == layout and data.summary["has_reports"]
    assert (len(data.studies), data.studies["patient_id"].nunique()) == (STUDIES, STUDIES // 2)
    truth = pd.read_csv(source / "phantom_studies.csv", dtype=str, keep_default_na=False)
    uid_of = data.images.set_index("image_id")["uid"]
    label_of = data.studies.set_index("uid")["label"]
    assert [label_of[uid_of[i]] for i in truth["frontal_image_id"]] == truth["label"].astype(
        int
    ).tolist()
    assert data.images.groupby("patient_id")["split"].nunique().max() == 1
    assert (data.studies["text"] != "").all()
    masks = list((source / "masks").glob("*_mask.png"))
    assert masks and {m.name.removesuffix("_mask.png") for m in masks} <= set(uid_of.index)


def test_findings_follow_the_drawn_lesions(layout_and_prepared):
    layout, source, data = layout_and_prepared
    truth = pd.read_csv(source / "phantom_studies.csv", dtype=str, keep_default_na=False)
    uid_of = data.images.set_index("image_id")["uid"]
    name = "cardiomegaly" if layout == "manifest" else "Cardiomegaly"
    has_heart = truth["findings"].str.contains("cardiomegaly")
    targets = data.findings.loc[[uid_of[i] for i in truth["frontal_image_id"]], name]
    assert targets.tolist() == has_heart.astype(float).tolist()


def test_mimic_files_follow_the_documentation(tmp_path):
    root = generate_phantoms(tmp_path / "m", 6, 48, "mimic", seed=1).out
    images = sorted(p.relative_to(root).as_posix() for p in (root / "files").rglob("*.jpg"))
    assert images and all(MIMIC_IMAGE.match(p) for p in images)
    with Image.open(root / images[0]) as image:
        assert image.format == "JPEG"
    metadata = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv")
    assert list(metadata.columns) == [
        "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
        "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
        "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning",
    ]  # fmt: skip
    split = pd.read_csv(root / "mimic-cxr-2.0.0-split.csv")
    assert list(split.columns) == ["dicom_id", "study_id", "subject_id", "split"]
    assert set(split["split"]) <= {"train", "validate", "test"}
    labels = pd.read_csv(root / "mimic-cxr-2.0.0-chexpert.csv")
    assert list(labels.columns) == ["subject_id", "study_id", *sorted(CHEXPERT_FINDINGS)]
    assert set(labels[list(CHEXPERT_FINDINGS)].stack().dropna().unique()) == {1.0, 0.0, -1.0}
    with zipfile.ZipFile(root / "mimic-cxr-reports.zip") as archive:
        names = archive.namelist()
        text = archive.read(names[0]).decode()
    assert len(names) == 6 and all(re.match(r"^files/p1\d/p1\d{7}/s5\d{7}\.txt$", n) for n in names)
    assert "FINAL REPORT" in text and "\n INDICATION:" in text and "XXXX" not in text


def test_chexpert_files_follow_the_documentation(tmp_path):
    root = generate_phantoms(tmp_path / "c", 20, 48, "chexpert", seed=1).out
    train = pd.read_csv(root / "CheXpert-v1.0-small/train.csv")
    assert list(train.columns) == ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA",
                                   *CHEXPERT_FINDINGS]  # fmt: skip
    assert (
        train["Path"].str.match(r"^CheXpert-v1\.0-small/train/patient\d{5}/study\d/view\d_").all()
    )
    valid = pd.read_csv(root / "CheXpert-v1.0-small/valid.csv")
    assert valid["Path"].str.startswith("CheXpert-v1.0-small/valid/").all() and len(valid)
    assert (root / "df_chexpert_plus_240401.csv").is_file()
