"""Patient-level, label-stratified, seeded train/val/test split."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from chestclip.errors import ChestClipError

SPLITS = ("train", "val", "test")


def split_sizes(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """train = floor(f_train·n), val = floor(f_val·n), test = the rest (the paper's rule)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    # Rounding first keeps 0.7·10 = 7.000000000000001 and 0.7·n = 6.9999999 both at 7.
    n_train = math.floor(round(fractions[0] * n, 6))
    n_val = math.floor(round(fractions[1] * n, 6))
    return n_train, n_val, n - n_train - n_val


def _take(
    ids: np.ndarray, labels: np.ndarray, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``ids`` into ``size`` and the rest, stratified by label when every class allows it."""
    if size == 0:
        return ids[:0], ids
    if size == len(ids):
        return ids, ids[:0]
    counts = np.unique(labels, return_counts=True)[1]
    stratify = labels if len(counts) > 1 and counts.min() >= 2 else None
    return train_test_split(
        ids, train_size=size, stratify=stratify, random_state=seed, shuffle=True
    )


def split_by_patient(
    patients: pd.DataFrame,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    seed: int = 0,
) -> pd.Series:
    """Assign each patient (one IU report = one patient, ``uid``) to train/val/test.

    ``patients`` has one row per uid with columns ``uid`` and ``label``. Returns a Series of split
    names indexed by uid. Every image of a patient follows its patient's split.
    """
    if patients["uid"].duplicated().any():
        raise ValueError("split_by_patient needs one row per uid")
    order = patients.sort_values("uid", key=lambda s: s.astype(str))
    uids, labels = order["uid"].to_numpy(), order["label"].to_numpy()
    n_train, n_val, _ = split_sizes(len(uids), fractions)
    train, rest = _take(uids, labels, n_train, seed)
    rest_labels = order.set_index("uid").loc[rest, "label"].to_numpy()
    val, test = _take(rest, rest_labels, n_val, seed)
    assignment = {
        **dict.fromkeys(train, "train"),
        **dict.fromkeys(val, "val"),
        **dict.fromkeys(test, "test"),
    }
    return pd.Series(assignment, name="split").loc[patients["uid"]]


def assign_splits(
    studies: pd.DataFrame,
    fractions: tuple[float, float, float] | str = (0.70, 0.15, 0.15),
    seed: int = 0,
) -> pd.Series:
    """The split of every study (row order kept), so that each patient's studies share one.

    ``studies`` has columns ``uid``, ``patient_id``, ``label`` and, for ``fractions ==
    "official"``, ``official_split``. With fractions, patients are split by ``split_by_patient``
    on their worst label (diseased if any study is); "official" keeps the source's own split and
    fails, naming the problem, where a study has none or a patient has several.
    """
    if fractions == "official":
        official = studies["official_split"].fillna("")
        missing = studies.loc[~official.isin(SPLITS), "uid"]
        if len(missing):
            raise ChestClipError(
                f"split: official: {len(missing)} studies have no official split (e.g. "
                f"{missing.iloc[0]}); split this source by fractions instead"
            )
        mixed = official.groupby(studies["patient_id"]).nunique()
        if (mixed > 1).any():
            raise ChestClipError(
                f"split: official: patient {mixed.idxmax()} is in several official splits"
            )
        return pd.Series(official.to_numpy(), index=studies.index, name="split")
    patients = studies.groupby("patient_id")["label"].max()
    frame = pd.DataFrame({"uid": patients.index, "label": patients.to_numpy()})
    split_of = split_by_patient(frame, fractions, seed)
    return pd.Series(
        studies["patient_id"].map(split_of).to_numpy(), index=studies.index, name="split"
    )
