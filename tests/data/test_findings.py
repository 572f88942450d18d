"""Multi-label findings: the MeSH mapping (hand cases and the real IU reports), label policies,
per-study combination and the normal/diseased rule."""

import numpy as np
import pandas as pd
import pytest

from chestclip.data.findings import (
    CHEXPERT_FINDINGS,
    apply_policy,
    combine_per_study,
    diseased_from_findings,
    finding_counts,
    findings_from_mesh,
    parse_label_values,
)

NAN = np.nan


def _one(terms: str) -> pd.Series:
    return findings_from_mesh(pd.Series([terms])).iloc[0]


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ("normal", {"No Finding": 1}),
        ("Cardiomegaly/mild", {"Cardiomegaly": 1}),
        ("Cardiomegaly/borderline", {"Cardiomegaly": -1}),
        ("Cardiomegaly/borderline;Cardiac Shadow/enlarged", {"Cardiomegaly": 1}),
        (
            "Opacity/lung/base/left;Pulmonary Atelectasis/base",
            {"Lung Opacity": 1, "Atelectasis": 1},
        ),
        ("Opacity/ribs", {}),  # outside the lungs
        ("Density/lung/upper lobe", {"Lung Opacity": 1}),
        ("Density/ribs", {}),
        ("Airspace Disease/lung/right;Infiltrate/lung", {"Lung Opacity": 1}),
        ("Pulmonary Edema;Pulmonary Congestion", {"Edema": 1}),
        ("Nodule/lung/right;Mass/hilum", {"Lung Lesion": 1}),
        ("Fractures, Bone/ribs/left", {"Fracture": 1}),
        ("Hydropneumothorax/right", {"Pneumothorax": 1}),
        ("Thickening/pleura/right", {"Pleural Other": 1}),
        ("Mediastinum/prominent", {"Enlarged Cardiomediastinum": 1}),
        ("Catheters, Indwelling;Surgical Instruments", {"Support Devices": 1}),
        ("Calcified Granuloma/lung;Thoracic Vertebrae/degenerative", {}),  # unmapped: diseased
    ],
)
def test_mesh_terms_map_to_chexpert_names(terms, expected):
    row = _one(terms)
    assert row.to_dict() == {name: float(expected.get(name, 0)) for name in CHEXPERT_FINDINGS}


def test_no_indexing_means_every_finding_is_missing():
    assert _one("No Indexing").isna().all()
    assert _one("No Indexing;Cardiomegaly")["Cardiomegaly"] == 1


@pytest.mark.real_data
def test_counts_per_finding_on_the_real_iu_reports(real_iu):
    reports = pd.read_csv(real_iu / "kaggle/indiana_reports.csv", dtype=str, keep_default_na=False)
    raw = findings_from_mesh(reports["MeSH"])
    positives = {name: int((raw[name] == 1).sum()) for name in CHEXPERT_FINDINGS}
    assert positives == {
        "No Finding": 1379, "Enlarged Cardiomediastinum": 17, "Cardiomegaly": 318,
        "Lung Opacity": 581, "Lung Lesion": 119, "Edema": 92, "Consolidation": 30,
        "Pneumonia": 40, "Atelectasis": 315, "Pneumothorax": 26, "Pleural Effusion": 148,
        "Pleural Other": 43, "Fracture": 83, "Support Devices": 321,
    }  # fmt: skip
    uncertain = {name: int(n) for name, n in (raw == -1).sum().items() if n}
    assert uncertain == {"Cardiomegaly": 46, "Pleural Effusion": 1}  # the "borderline" terms
    assert int(raw.isna().all(axis=1).sum()) == 92  # "No Indexing" reports
    # No Finding is exactly the normal label of the binary task
    assert int((raw["No Finding"] == 0).sum()) + 92 == 2472


def test_label_policies():
    raw = pd.DataFrame({"a": [1.0, 0.0, -1.0, NAN]})
    expected = {
        ("ignore", "ignore"): [1, 0, NAN, NAN],
        ("zeros", "ignore"): [1, 0, 0, NAN],
        ("ones", "zeros"): [1, 0, 1, 0],
        ("ignore", "ones"): [1, 0, NAN, 1],
    }
    for (uncertain, missing), values in expected.items():
        targets = apply_policy(raw, uncertain, missing)["a"].tolist()
        assert np.allclose(targets, values, equal_nan=True), (uncertain, missing)
    with pytest.raises(ValueError, match="uncertain policy"):
        apply_policy(raw, "maybe", "zeros")


def test_views_of_a_study_combine_to_the_strongest_statement():
    raw = pd.DataFrame({"a": [NAN, 0, 1, NAN, -1, 0, NAN], "b": [NAN] * 7})
    combined = combine_per_study(raw, ["s1", "s1", "s1", "s2", "s2", "s3", "s4"])
    assert np.allclose(combined["a"], [1, -1, 0, NAN], equal_nan=True)
    assert combined["b"].isna().all() and list(combined.index) == ["s1", "s2", "s3", "s4"]


def test_diseased_is_any_pathology_positive_or_uncertain():
    raw = pd.DataFrame(
        {
            "No Finding": [1, NAN, NAN, 0],
            "Support Devices": [1, 1, NAN, NAN],
            "Edema": [0, NAN, -1, 1],
        }
    )
    assert diseased_from_findings(raw).tolist() == [0, 0, 1, 1]


def test_label_values_are_validated():
    good = pd.DataFrame({"Edema": ["1.0", "0.0", "-1.0", ""]})
    assert np.allclose(parse_label_values(good, "x.csv")["Edema"], [1, 0, -1, NAN], equal_nan=True)
    with pytest.raises(ValueError, match=r"x\.csv: column 'Edema' holds 'yes'"):
        parse_label_values(pd.DataFrame({"Edema": ["1", "yes"]}), "x.csv")
    with pytest.raises(ValueError, match=r"x\.csv: column 'Edema' holds 2"):
        parse_label_values(pd.DataFrame({"Edema": ["2"]}), "x.csv")


def test_finding_counts_per_split():
    raw = pd.DataFrame({"a": [1.0, -1.0, NAN, 0.0]})
    targets = apply_policy(raw, "ignore", "zeros")
    counts = finding_counts(raw, targets, pd.Series(["train", "train", "test", "test"]))
    assert counts["a"] == {
        "positive": 1, "negative": 1, "uncertain": 1, "missing": 1,
        "splits": {"train": {"positive": 1, "negative": 0, "masked": 1},
                   "test": {"positive": 0, "negative": 2, "masked": 0}},
    }  # fmt: skip
