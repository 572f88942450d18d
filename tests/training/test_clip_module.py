import math

import pytest
import torch

from chestclip.training.clip_module import cosine_with_warmup, image_to_text_recall


def test_recall_counts_identical_texts_as_one_candidate():
    text = torch.eye(3)[[0, 1, 1, 2]]  # images 1 and 2 share a report (same text id)
    image = torch.eye(3)[[0, 1, 1, 0]]  # image 3 points at text 0 instead of its own text 2
    result = image_to_text_recall(image, text, torch.tensor([5, 7, 7, 9]), ks=(1, 2))
    assert result["recall@1"] == pytest.approx(3 / 4)
    assert result["chance@1"] == pytest.approx(1 / 3)
    # text 9 scores 0, tied with text 7: only strictly better candidates push it down the ranking
    assert result["recall@2"] == 1.0


def test_recall_of_perfect_and_reversed_embeddings():
    embeddings = torch.nn.functional.normalize(torch.randn(10, 8), dim=1)
    ids = torch.arange(10)
    assert image_to_text_recall(embeddings, embeddings, ids)["recall@1"] == 1.0
    assert image_to_text_recall(-embeddings, embeddings, ids)["recall@1"] == 0.0


def test_cosine_with_warmup():
    factor = cosine_with_warmup(warmup_epochs=2, epochs=10)
    assert factor(0) == pytest.approx(1 / 3) and factor(1) == pytest.approx(2 / 3)
    assert factor(2) == pytest.approx(1.0)
    assert factor(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factor(10) == pytest.approx(0.0)
