import numpy as np
import pandas as pd
import pytest

from chestclip.data.split import assign_splits, split_by_patient, split_sizes
from chestclip.errors import ChestClipError


def _patients(n: int, diseased_fraction: float = 0.64, seed: int = 1) -> pd.DataFrame:
    labels = (np.random.default_rng(seed).random(n) < diseased_fraction).astype(int)
    return pd.DataFrame({"uid": [str(i) for i in range(1, n + 1)], "label": labels})


def test_paper_sizes():
    assert split_sizes(3894, (0.70, 0.15, 0.15)) == (2725, 584, 585)
    assert split_sizes(10, (0.7, 0.2, 0.1)) == (7, 2, 1)


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.8, 0.3, 0.1), (-0.1, 0.6, 0.5)])
def test_bad_fractions_are_rejected(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split_sizes(10, fractions)


def test_split_properties():
    patients = _patients(503)
    split = split_by_patient(patients, (0.70, 0.15, 0.15), seed=0)
    assert list(split.index) == list(patients["uid"])  # one split per uid, none lost
    n_train, n_val, n_test = split_sizes(503, (0.70, 0.15, 0.15))
    counts = split.value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == (n_train, n_val, n_test)
    labels = patients.set_index("uid")["label"]
    for name, size in (("train", n_train), ("val", n_val), ("test", n_test)):
        members = labels[split[split == name].index]
        for cls in (0, 1):
            expected = size * (labels == cls).mean()
            assert abs((members == cls).sum() - expected) <= 1, (name, cls)


def test_split_is_deterministic_per_seed():
    patients = _patients(200)
    first = split_by_patient(patients, seed=3)
    assert first.equals(split_by_patient(patients, seed=3))
    assert first.equals(
        split_by_patient(patients.sample(frac=1, random_state=0), seed=3).loc[first.index]
    )
    assert not first.equals(split_by_patient(patients, seed=4))


def test_duplicate_uids_are_rejected():
    patients = pd.DataFrame({"uid": ["1", "1"], "label": [0, 1]})
    with pytest.raises(ValueError, match="one row per uid"):
        split_by_patient(patients)


def test_tiny_classes_do_not_crash():
    patients = pd.DataFrame({"uid": list("abcdef"), "label": [0, 1, 1, 1, 1, 1]})
    split = split_by_patient(patients, (0.5, 0.25, 0.25), seed=0)
    assert split.value_counts().to_dict() == {"train": 3, "val": 1, "test": 2}


def test_assign_splits_keeps_every_patient_in_one_split():
    studies = pd.DataFrame({
        "uid": [f"s{i}" for i in range(60)],
        "patient_id": [f"p{i // 3}" for i in range(60)],  # three studies per patient
        "label": [i % 2 for i in range(60)],
    })  # fmt: skip
    split = assign_splits(studies, (0.7, 0.15, 0.15), seed=0)
    assert split.groupby(studies["patient_id"]).nunique().max() == 1
    assert split.value_counts().to_dict() == {"train": 42, "val": 9, "test": 9}  # 14, 3, 3 patients


def test_assign_splits_equals_split_by_patient_when_each_study_is_a_patient():
    patients = _patients(211)
    studies = patients.assign(patient_id=patients["uid"])
    expected = split_by_patient(patients, (0.7, 0.15, 0.15), seed=4)
    assert assign_splits(studies, (0.7, 0.15, 0.15), seed=4).tolist() == expected.tolist()


def test_official_split_needs_one_per_study_and_patient():
    studies = pd.DataFrame({"uid": ["a", "b", "c"], "patient_id": ["p", "p", "q"], "label": 0,
                            "official_split": ["train", "train", "test"]})  # fmt: skip
    assert assign_splits(studies, "official").tolist() == ["train", "train", "test"]
    with pytest.raises(ChestClipError, match="patient p is in several official splits"):
        assign_splits(studies.assign(official_split=["train", "val", "test"]), "official")
    with pytest.raises(ChestClipError, match="1 studies have no official split"):
        assign_splits(studies.assign(official_split=["train", "", "test"]), "official")
