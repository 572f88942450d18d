"""A manifest CSV: default and mapped column names, report text or sections, labels, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chestclip.config import ManifestConfig, PrepareConfig
from chestclip.data import PreparedData, prepare_dataset
from chestclip.data.sources import SourceError, detect_layout, read_source

REPORT = "INDICATION: Cough.\nFINDINGS: Right lower lobe\nconsolidation.\nIMPRESSION: Pneumonia."


def write_manifest(folder: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    for number, row in enumerate(rows):
        path = folder / row.get("image", row.get("path", ""))
        if path != folder and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((24, 24), 50 * number, np.uint8)).save(path)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / name, index=False)
    return folder / name


ROWS = [
    {"image": "a/1.png", "patient_id": "P1", "study_id": "S1", "report": REPORT, "view": "PA",
     "Pneumonia": "1", "Edema": "", "label": 1},
    {"image": "a/2.png", "patient_id": "P1", "study_id": "S1", "report": REPORT, "view": "LL",
     "Pneumonia": "-1", "Edema": "0", "label": 1},
    {"image": "b/3.png", "patient_id": "P2", "study_id": "S2", "report": "Normal chest.",
     "view": "", "Pneumonia": "0", "Edema": "0", "label": 0},
]  # fmt: skip


def test_default_column_names(tmp_path):
    csv = write_manifest(tmp_path / "export", ROWS)
    assert detect_layout(csv) == "manifest" and detect_layout(csv.parent) == "manifest"
    records = read_source(csv)
    reports = records.reports.set_index("uid")
    assert list(reports.index) == ["S1", "S2"] and reports["patient_id"].tolist() == ["P1", "P2"]
    assert reports.loc["S1", "findings"] == "Right lower lobe consolidation."
    assert reports.loc["S1", "impression"] == "Pneumonia."
    assert reports.loc["S2", "findings"] == "Normal chest."  # no headers: the whole text
    assert reports["label"].tolist() == [1, 0]
    assert list(records.findings.columns) == ["Pneumonia", "Edema"]  # CheXpert names present
    assert records.findings.loc["S1"].tolist() == [1, 0]  # positive beats uncertain per study
    assert records.images["projection"].tolist() == ["Frontal", "Lateral", "unknown"]
    assert records.images["image_id"].tolist() == ["1", "2", "3"]


def test_mapped_columns_from_config_or_a_yaml_beside_the_csv(tmp_path):
    rows = [{"path": r["image"], "mrn": r["patient_id"], "acc": r["study_id"],
             "impression_text": "Clear.", "effusion": r["Pneumonia"]} for r in ROWS]  # fmt: skip
    csv = write_manifest(tmp_path / "export", rows, name="export.csv")
    columns = ManifestConfig(
        image="path", patient_id="mrn", study_id="acc", impression="impression_text",
        finding_columns=("effusion",),
    )  # fmt: skip
    records = read_source(csv, manifest=columns)
    assert records.reports["impression"].tolist() == ["Clear.", "Clear."]
    assert records.reports["label"].tolist() == [1, 0]  # derived from the findings
    assert list(records.findings.columns) == ["effusion"]
    (tmp_path / "export/export.yaml").write_text(
        "image: path\npatient_id: mrn\nstudy_id: acc\nfinding_columns: [effusion]\n"
    )
    assert read_source(csv).reports["uid"].tolist() == ["S1", "S2"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="patient_id"), "no column 'patient_id'"),
        (lambda t: t.drop(columns=["label", "Pneumonia", "Edema"]), "needs a label column"),
        (lambda t: t.assign(label=[1, 1, 2]), "'label' must hold 0 or 1"),
        (lambda t: t.assign(Edema=["", "maybe", ""]), "column 'Edema' holds 'maybe'"),
        (lambda t: t.assign(patient_id=["P1", "P9", "P2"]), "study 'S1' belongs to several"),
    ],
)
def test_bad_manifests_are_one_clear_error(tmp_path, change, message):
    csv = write_manifest(tmp_path / "export", ROWS)
    change(pd.read_csv(csv, dtype=str, keep_default_na=False)).to_csv(csv, index=False)
    with pytest.raises(SourceError, match=rf"manifest\.csv: .*{message}"):
        read_source(csv)


def test_official_split_and_prepare(tmp_path):
    rows = [{**r, "split": s} for r, s in zip(ROWS, ["train", "train", "validation"], strict=True)]
    csv = write_manifest(tmp_path / "export", rows)
    summary = prepare_dataset(csv, tmp_path / "p", PrepareConfig(image_size=16, split="official"))
    assert summary.counts["layout"] == "manifest"
    studies = PreparedData(tmp_path / "p").studies.set_index("uid")
    assert studies["split"].to_dict() == {"S1": "train", "S2": "val"}
    assert studies.loc["S1", "n_images"] == 2
