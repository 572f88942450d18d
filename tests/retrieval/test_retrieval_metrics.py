from math import comb

import numpy as np
import pandas as pd
import pytest

from chestclip.retrieval import (
    EmbeddingIndex,
    chance_recall,
    evaluate_retrieval,
    first_hit_ranks,
    retrieval_metrics,
)


def unit_rows(rows: list[list[float]]) -> np.ndarray:
    array = np.asarray(rows, dtype=np.float32)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


# Four studies, the first two with the same report "a"; one image per study.
REPORT_TEXTS = ["a", "a", "b", "c"]
REPORTS = unit_rows([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
IMAGE_TEXTS = ["a", "a", "b", "c"]
IMAGES = unit_rows(
    [
        [1, 0.5, 0],  # nearest "a": rank 1
        [0.2, 1, 0],  # study 2's image: "b" first, then "a" (the copy of its report): rank 2
        [0, 0.3, 1],  # "c" before its own "b": rank 2
        [0, 0, 1],  # rank 1
    ]
)


def test_hand_example_counts_identical_reports_once_and_as_hits():
    result = retrieval_metrics(IMAGES, IMAGE_TEXTS, REPORTS, REPORT_TEXTS, ks=(1, 2, 5))
    forward = result["image_to_report"]
    # candidates are the 3 DISTINCT reports, so the duplicate "a" never outranks a hit
    assert (forward["n_queries"], forward["n_candidates"]) == (4, 3)
    assert (forward["recall@1"], forward["recall@2"], forward["recall@5"]) == (0.5, 1.0, 1.0)
    assert forward["median_rank"] == 1.5
    assert forward["chance@1"] == pytest.approx(1 / 3) and forward["chance@2"] == pytest.approx(
        2 / 3
    )
    assert forward["chance@5"] == 1.0

    backward = result["report_to_image"]
    # query "a" has two relevant images (its best, image 1, comes first); "b" comes third
    assert (backward["n_queries"], backward["n_candidates"]) == (3, 4)
    assert backward["recall@1"] == pytest.approx(2 / 3) and backward["recall@2"] == pytest.approx(
        2 / 3
    )
    assert backward["median_rank"] == 1.0
    # chance with r relevant of 4: "a" 1 − C(2,1)/C(4,1) = 1/2, "b" and "c" 1/4
    assert backward["chance@1"] == pytest.approx((1 / 2 + 1 / 4 + 1 / 4) / 3)


def test_first_hit_ranks_hand_example_and_ties_count_against_the_query():
    relevant = np.array([[True, False, False], [True, False, False], [False, True, False]])
    queries = unit_rows([[1, 0.1, 0], [0, 1, 0.5], [1, 1, 1]])
    candidates = np.eye(3, dtype=np.float32)
    assert first_hit_ranks(queries, candidates, relevant).tolist() == [1, 3, 3]
    collapsed = np.ones((3, 3), dtype=np.float32) / np.sqrt(3)
    assert first_hit_ranks(collapsed, collapsed, np.eye(3, dtype=bool)).tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="at least one relevant"):
        first_hit_ranks(queries, candidates, np.zeros((3, 3), dtype=bool))


def test_chance_level_is_k_over_n_for_one_relevant_and_hypergeometric_otherwise():
    assert chance_recall(np.ones(7), 50, 5) == pytest.approx(5 / 50)
    assert chance_recall(np.ones(7), 4, 10) == 1.0
    assert chance_recall(np.array([50]), 50, 1) == 1.0
    expected = 1 - comb(50 - 3, 10) / comb(50, 10)
    assert chance_recall(np.array([3]), 50, 10) == pytest.approx(expected)


def test_perfect_embeddings_recall_everything():
    rng = np.random.default_rng(0)
    texts = rng.integers(0, 30, 60)  # 60 studies with 30 (or fewer) distinct reports
    table = unit_rows(rng.normal(size=(30, 16)).tolist())
    image_texts = np.repeat(texts, 2)  # two views per study, each embedded like its report
    result = retrieval_metrics(table[image_texts], image_texts, table[texts], texts)
    for direction in result.values():
        assert direction["recall@1"] == 1.0 and direction["median_rank"] == 1.0
    assert result["image_to_report"]["n_candidates"] == len(set(texts))


def test_random_embeddings_recall_about_chance():
    rng = np.random.default_rng(1)
    n_reports = 1000
    texts = np.arange(n_reports)
    image_texts = np.repeat(texts, 2)
    reports = unit_rows(rng.normal(size=(n_reports, 64)).tolist())
    images = unit_rows(rng.normal(size=(2 * n_reports, 64)).tolist())
    result = retrieval_metrics(images, image_texts, reports, texts, ks=(1, 10, 100))
    for direction in result.values():
        for k in (10, 100):
            assert direction[f"recall@{k}"] == pytest.approx(direction[f"chance@{k}"], abs=0.03)
    assert result["image_to_report"]["chance@10"] == pytest.approx(10 / n_reports)
    assert result["report_to_image"]["median_rank"] == pytest.approx(n_reports / 2, rel=0.2)


def test_text_keys_may_be_ids_or_texts_and_must_cover_every_image():
    by_text = retrieval_metrics(IMAGES, IMAGE_TEXTS, REPORTS, REPORT_TEXTS)
    by_id = retrieval_metrics(IMAGES, [0, 0, 1, 2], REPORTS, [0, 0, 1, 2])
    assert by_text == by_id
    with pytest.raises(ValueError, match=r"not among the reports, e\.g\. 'd'"):
        retrieval_metrics(IMAGES, ["a", "a", "b", "d"], REPORTS, REPORT_TEXTS)


def test_a_report_without_images_is_a_candidate_but_not_a_query():
    extra = np.vstack([REPORTS, unit_rows([[1, 1, 1]])])
    result = retrieval_metrics(IMAGES, IMAGE_TEXTS, extra, [*REPORT_TEXTS, "e"])
    assert result["image_to_report"]["n_candidates"] == 4
    assert result["report_to_image"]["n_queries"] == 3


def test_evaluate_retrieval_keys_an_index_by_its_cleaned_texts():
    studies = pd.DataFrame(
        {"uid": ["1", "2", "3", "4"], "text": REPORT_TEXTS, "findings": "", "impression": ""}
    )
    images = pd.DataFrame({"image_id": ["i1", "i2", "i3", "i4"], "uid": ["1", "2", "3", "4"]})
    index = EmbeddingIndex("test", images, studies, IMAGES, REPORTS)
    result = evaluate_retrieval(index, ks=(1, 2, 5))
    assert result == {
        "split": "test",
        **retrieval_metrics(IMAGES, IMAGE_TEXTS, REPORTS, REPORT_TEXTS, ks=(1, 2, 5)),
    }
