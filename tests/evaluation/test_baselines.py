import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, check_cv

from chestclip.data import PreparedData
from chestclip.evaluation import baselines
from chestclip.evaluation.baselines import (
    bag_of_words_baseline,
    baseline_scores,
    text_leaks_findings,
)
from chestclip.evaluation.evaluate import baseline_for

NORMAL_WORDS = ["clear", "normal", "unremarkable", "no", "acute", "lungs", "heart"]
DISEASED_WORDS = ["effusion", "opacity", "cardiomegaly", "atelectasis", "lungs", "heart"]
SHARED_WORDS = ["chest", "xray", "views", "patient", "history", "comparison", "pa", "lateral"]


def _texts(n: int, seed: int, marker: str = "") -> tuple[list[str], np.ndarray]:
    """Two shared words and, with probability 0.9, a word of its class: learnable, not trivial."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    texts = []
    for label in labels:
        vocabulary = DISEASED_WORDS if (label == 1) == (rng.random() < 0.9) else NORMAL_WORDS
        words = [*rng.choice(SHARED_WORDS, 2), rng.choice(vocabulary), marker]
        texts.append(" ".join(rng.permutation(words)).strip())
    return texts, labels


def test_beats_chance_on_a_synthetic_text_task():
    train_texts, train_labels = _texts(200, seed=0)
    test_texts, test_labels = _texts(200, seed=1)
    model = bag_of_words_baseline(train_texts, train_labels, seed=0)
    scores = baseline_scores(model, test_texts)
    assert scores.shape == (200,) and ((scores >= 0) & (scores <= 1)).all()
    assert roc_auc_score(test_labels, scores) > 0.75
    assert model.named_steps["logreg"].C in (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def test_sees_training_texts_only_and_is_deterministic():
    train_texts, train_labels = _texts(100, seed=2)
    test_texts, _ = _texts(50, seed=3, marker="testonlytoken")
    model = bag_of_words_baseline(train_texts, train_labels, seed=0)
    vocabulary = model.named_steps["tfidf"].vocabulary_
    assert "testonlytoken" not in vocabulary
    assert set(vocabulary) <= {w for t in train_texts for w in t.split()} | {
        " ".join(pair) for t in train_texts for pair in zip(t.split(), t.split()[1:], strict=False)
    }
    again = bag_of_words_baseline(train_texts, train_labels, seed=0)
    np.testing.assert_array_equal(
        baseline_scores(model, test_texts), baseline_scores(again, test_texts)
    )


def test_too_few_labels_are_rejected():
    with pytest.raises(ValueError, match="at least 5"):
        bag_of_words_baseline(["a b", "c d", "a c"], [0, 1, 1])


@pytest.mark.parametrize(
    ("fields", "leaks"),
    [
        (["indication"], False),
        ([], False),
        (["indication", "findings"], True),
        (["Impression"], True),
        ("findings", True),
    ],
)
def test_text_leaks_findings(fields, leaks):
    assert text_leaks_findings(fields) is leaks


@pytest.fixture
def cv_calls(monkeypatch):
    """Every cross-validation the baseline runs: (rows, folds as (train, validation) indices)."""
    calls = []

    class RecordingSearch(GridSearchCV):
        def fit(self, X, y=None, **params):
            splitter = check_cv(self.cv, y, classifier=True)
            calls.append((list(X), list(splitter.split(X, y, params.get("groups")))))
            return super().fit(X, y, **params)

    monkeypatch.setattr(baselines, "GridSearchCV", RecordingSearch)
    return calls


def test_cross_validation_never_splits_a_patient_across_folds(cv_calls):
    """Frontal and lateral views share their report's text: in two folds they would let C be
    chosen for memorising a report rather than for generalising."""
    texts, labels = _texts(60, seed=4)
    patients = np.repeat(np.arange(60), 2)  # two views per patient, one report
    bag_of_words_baseline(
        np.repeat(texts, 2).tolist(), np.repeat(labels, 2), seed=0, groups=patients
    )
    ((_, folds),) = cv_calls
    assert len(folds) == 5
    for train, validation in folds:
        assert not set(patients[train]) & set(patients[validation])
    assert sorted(np.concatenate([patients[v] for _, v in folds])) == sorted(patients)


@pytest.mark.slow
def test_the_evaluated_baseline_learns_one_row_per_study(cv_calls, prepared_phantoms):
    data = PreparedData(prepared_phantoms)
    baseline_for(data, ("indication", "findings"), seed=0)
    ((rows, _),) = cv_calls
    assert len(rows) == (data.studies["split"] == "train").sum()
