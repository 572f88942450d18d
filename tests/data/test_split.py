import numpy as np
import pandas as pd
import pytest

from chestclip.data.split import split_by_patient, split_sizes


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
