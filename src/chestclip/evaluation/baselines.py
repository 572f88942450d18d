"""Text baselines that any learned head must beat, and a flag for text that states the label.

The IU X-Ray label comes from the report's MeSH/Problems terms, which radiologists derive from the
``findings`` and ``impression`` sections: a classifier that reads those sections is reading the
answer. ``text_leaks_findings`` names that case so reports and figures can say so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
from sklearn.pipeline import Pipeline

LEAKING_FIELDS = frozenset({"findings", "impression"})
LEAK_WARNING = (
    "{head}: its text includes {fields}, written by the radiologist after reading the image; "
    "its score measures reading the report, not reading the X-ray"
)
CV_FOLDS = 5
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def text_leaks_findings(fields: str | Sequence[str]) -> bool:
    """True when the text includes ``findings`` or ``impression``, where the label is written."""
    names = [fields] if isinstance(fields, str) else list(fields)
    return any(name.strip().lower() in LEAKING_FIELDS for name in names)


def bag_of_words_baseline(
    train_texts: Sequence[str],
    train_labels: Sequence[int] | np.ndarray,
    seed: int = 0,
    groups: Sequence | np.ndarray | None = None,
) -> Pipeline:
    """TF-IDF (uni+bigrams) + logistic regression fitted on TRAIN texts only.

    C is chosen by 5-fold CV ROC-AUC on the training data, the folds stratified by label and
    grouped by ``groups`` (the patient, ``uid``; default: each row its own group), with the
    vectoriser refitted inside each fold: rows of one patient share their report's text, and in
    two folds they would reward memorising reports (weak regularisation). The returned pipeline
    is refitted on all training texts. Score validation and test texts with ``baseline_scores``.
    """
    texts, labels = list(train_texts), np.asarray(train_labels)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} training texts but {len(labels)} labels")
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    if len(groups) != len(labels):
        raise ValueError(f"{len(groups)} groups for {len(labels)} training texts")
    per_group = pd.Series(labels).groupby(groups).max()  # a patient with a diseased row
    classes, counts = np.unique(per_group, return_counts=True)
    if not np.array_equal(classes, [0, 1]) or counts.min() < CV_FOLDS:
        raise ValueError(
            f"bag_of_words_baseline needs labels 0 and 1, each in at least {CV_FOLDS} groups; "
            f"got {dict(zip(classes.tolist(), counts.tolist(), strict=True))}"
        )
    pipeline = Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
            # liblinear: made for sparse bag-of-words, and no BLAS threads to oversubscribe
            ("logreg", LogisticRegression(solver="liblinear", max_iter=2000, random_state=seed)),
        ]
    )
    search = GridSearchCV(
        pipeline,
        {"logreg__C": list(C_GRID)},
        scoring="roc_auc",
        cv=StratifiedGroupKFold(CV_FOLDS, shuffle=True, random_state=seed),
        refit=True,
    )
    search.fit(texts, labels, groups=groups)
    return search.best_estimator_


def baseline_scores(model: Pipeline, texts: Sequence[str]) -> np.ndarray:
    """P(diseased) for each text, from ``predict_proba``: [N]."""
    return model.predict_proba(list(texts))[:, list(model.classes_).index(1)]
