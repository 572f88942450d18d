"""CheXpert on a small hand-made download, written from the format's documentation.

Documented facts encoded (Stanford ML Group, CheXpert v1.0 / v1.0-small): ``train.csv`` and
``valid.csv`` with columns Path, Sex, Age, Frontal/Lateral, AP/PA and the 14 labels in the order
below; Path reads ``CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg`` (relative
to the folder above the dataset); labels 1.0, 0.0, -1.0 or blank in train.csv, 0/1 in valid.csv.
The CheXpert Plus table (``df_chexpert_plus_240401.csv``, path_to_image relative to the dataset
root, section_* columns) is ASSUMED from its release notes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chestclip.config import PrepareConfig
from chestclip.data import PreparedData, prepare_dataset
from chestclip.data.dataset import PreparedDataError
from chestclip.data.findings import CHEXPERT_FINDINGS
from chestclip.data.sources import detect_layout, read_source

ROWS = [  # (Path under the root, Sex, Age, Frontal/Lateral, AP/PA, {label: value})
    ("train/patient00001/study1/view1_frontal.jpg", "Female", 68, "Frontal", "AP",
     {"No Finding": "1.0"}),
    ("train/patient00002/study2/view1_frontal.jpg", "Female", 87, "Frontal", "AP",
     {"Cardiomegaly": "-1.0", "Lung Opacity": "1.0", "Fracture": "1.0"}),
    ("train/patient00002/study2/view2_lateral.jpg", "Female", 87, "Lateral", "",
     {"Cardiomegaly": "-1.0", "Lung Opacity": "1.0", "Fracture": "1.0"}),
    ("train/patient00002/study1/view1_frontal.jpg", "Female", 83, "Frontal", "AP",
     {"Lung Opacity": "1.0", "Fracture": "1.0", "Pleural Effusion": "0.0"}),
    ("train/patient00003/study1/view1_frontal.jpg", "Male", 41, "Frontal", "AP",
     {"Edema": "1.0"}),
]  # fmt: skip
VALID = [("valid/patient64541/study1/view1_frontal.jpg", "Male", 73, "Frontal", "AP",
          {**dict.fromkeys(CHEXPERT_FINDINGS, "0.0"), "Cardiomegaly": "1.0"})]  # fmt: skip
COLUMNS = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_FINDINGS]


def write_chexpert(top: Path, name: str = "CheXpert-v1.0-small", plus: bool = True) -> Path:
    root = top / name
    for table, rows in (("train.csv", ROWS), ("valid.csv", VALID)):
        records = []
        for number, (path, sex, age, view, ap_pa, labels) in enumerate(rows):
            records.append([f"CheXpert-v1.0-small/{path}", sex, age, view, ap_pa,
                            *(labels.get(n, "") for n in CHEXPERT_FINDINGS)])  # fmt: skip
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((40, 32), 30 * number, np.uint8)).save(root / path)
        root.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(records, columns=COLUMNS).to_csv(root / table, index=False)
    if plus:
        pd.DataFrame({
            "path_to_image": [r[0] for r in ROWS[:4]],
            "section_clinical_history": ["Chest pain.", "Fall.", "Fall.", "Trauma."],
            "section_history": ["", "", "", ""],
            "section_comparison": ["None.", "", "", ""],
            "section_findings": ["Clear lungs.", "Left rib fracture, opacity.", "", "Opacity."],
            "section_impression": ["Normal.", "Rib fracture.", "", "Fracture."],
        }).to_csv(top / "df_chexpert_plus_240401.csv", index=False)  # fmt: skip
    return root


def test_reads_patients_studies_labels_and_plus_reports(tmp_path):
    root = write_chexpert(tmp_path)
    assert detect_layout(root) == "chexpert" and detect_layout(tmp_path) == "chexpert"
    records = read_source(root)
    reports = records.reports.set_index("uid")
    assert list(reports.index) == ["patient00001_study1", "patient00002_study1",
                                   "patient00002_study2"]  # fmt: skip
    assert reports["patient_id"].tolist() == ["patient00001", "patient00002", "patient00002"]
    assert reports.loc["patient00002_study2", "findings"] == "Left rib fracture, opacity."
    assert reports.loc["patient00002_study2", "indication"] == "Fall."
    reasons = {s.id: s.reason for s in records.skipped}  # no Plus report: left out, listed
    assert reasons == {"patient00003_study1": "no report in the CheXpert Plus table",
                       "patient64541_study1": "no report in the CheXpert Plus table"}  # fmt: skip
    findings = records.findings
    assert findings.loc["patient00002_study2", "Cardiomegaly"] == -1
    assert np.isnan(findings.loc["patient00001_study1", "Edema"])
    assert reports["label"].tolist() == [0, 1, 1]
    images = records.images.set_index("image_id")
    assert images.loc["patient00002_study2_view2_lateral", "projection"] == "Lateral"
    assert all(Path(f).is_file() for f in images["file"])


def test_paths_resolve_whatever_the_root_is_named(tmp_path):
    root = write_chexpert(tmp_path, name="chexpert-copy", plus=False)
    assert all(Path(f).is_file() for f in read_source(root).images["file"])


def test_without_chexpert_plus_it_is_image_only(tmp_path):
    root = write_chexpert(tmp_path, plus=False)
    records = read_source(root)
    assert not records.has_reports and len(records.reports) == 5 and not records.skipped
    summary = prepare_dataset(root, tmp_path / "p", PrepareConfig(image_size=16, workers=1))
    assert summary.counts["has_reports"] is False
    data = PreparedData(tmp_path / "p")
    with pytest.raises(PreparedDataError, match=r"CLIP pre-training needs report text.*image-only"):
        data.require_reports("CLIP pre-training")
    assert data.findings.loc["patient64541_study1", "Cardiomegaly"] == 1


def test_official_split_is_refused_in_one_line(tmp_path):
    root = write_chexpert(tmp_path)
    with pytest.raises(ValueError, match="split: official: 3 studies have no official split"):
        prepare_dataset(root, tmp_path / "p", PrepareConfig(images=False, split="official"))


def test_pretraining_an_image_only_source_is_refused_in_one_line(tmp_path):
    from chestclip.config import load_run_config
    from chestclip.training.pretrain import pretrain

    root = write_chexpert(tmp_path, plus=False)
    prepare_dataset(root, tmp_path / "p", PrepareConfig(image_size=16, workers=1))
    with pytest.raises(PreparedDataError, match=r"CLIP pre-training needs report text"):
        pretrain(tmp_path / "p", tmp_path / "run", load_run_config("tiny"))
    assert not (tmp_path / "run").exists()
