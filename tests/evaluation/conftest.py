"""Synthetic scored test sets: patients with several images, labels and P(diseased) scores."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest


def make_scored(
    n_patients: int, images_per_patient: int = 2, seed: int = 0, separation: float = 1.5
) -> pd.DataFrame:
    """Columns uid, label, score: a patient's images share its label; scores are probabilities."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_patients)
    patient_logit = separation * (labels - 0.5) + rng.normal(0, 1, n_patients)
    uid = np.repeat(np.arange(n_patients), images_per_patient)
    logit = patient_logit[uid] + rng.normal(0, 0.5, len(uid))
    return pd.DataFrame(
        {"uid": uid.astype(str), "label": labels[uid], "score": 1 / (1 + np.exp(-logit))}
    )


@pytest.fixture(scope="session")
def scored() -> Callable[..., pd.DataFrame]:
    return make_scored
