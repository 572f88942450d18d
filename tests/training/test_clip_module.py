import math

import pytest
import torch

from chestclip.models import ChestCLIPConfig, ClipLoss, build_clip
from chestclip.retrieval.metrics import retrieval_metrics
from chestclip.training.clip_module import ClipModule, cosine_with_warmup, image_to_text_recall


def test_recall_counts_identical_texts_as_one_candidate():
    text = torch.eye(3)[[0, 1, 1, 2]]  # images 1 and 2 share a report (same text id)
    image = torch.eye(3)[[0, 1, 1, 0]]  # image 3 points at text 0 instead of its own text 2
    result = image_to_text_recall(image, text, torch.tensor([5, 7, 7, 9]), ks=(1, 2))
    assert result["recall@1"] == pytest.approx(3 / 4)
    assert result["chance@1"] == pytest.approx(1 / 3)
    # image 3 scores 0 for its own text 9, tied with text 7: a tie ranks before the hit, so text 9
    # comes third, not second
    assert result["recall@2"] == pytest.approx(3 / 4)


def test_a_collapsed_model_scores_zero_recall_not_full_recall():
    """Ties count against the query, as in retrieval.metrics: identical embeddings rank every
    other text before the query's own."""
    same = torch.nn.functional.normalize(torch.ones(6, 4), dim=1)
    result = image_to_text_recall(same, same, torch.arange(6), ks=(1, 5))
    assert result["recall@1"] == 0.0 and result["recall@5"] == 0.0


def test_validation_recall_ranks_like_retrieval_metrics():
    generator = torch.Generator().manual_seed(0)
    # coarse values make ties common
    image = torch.randint(0, 3, (40, 4), generator=generator).float()
    text_ids = torch.randint(0, 12, (40,), generator=generator)
    text = torch.randint(0, 3, (12, 4), generator=generator).float()[text_ids]
    keys = [str(int(i)) for i in text_ids]
    ks = (1, 5, 10)
    expected = retrieval_metrics(image.numpy(), keys, text.numpy(), keys, ks)["image_to_report"]
    result = image_to_text_recall(image, text, text_ids, ks)
    for k in ks:
        assert result[f"recall@{k}"] == pytest.approx(expected[f"recall@{k}"])
        assert result[f"chance@{k}"] == pytest.approx(expected[f"chance@{k}"])


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


@pytest.fixture
def clip_module() -> ClipModule:
    config = ChestCLIPConfig(
        image_encoder="tiny-vit",
        text_encoder="tiny-bert",
        embed_dim=16,
        image_size=32,
        learnable_temperature=True,
        max_logit_scale=100.0,
    )
    model = build_clip(config, vocab_size=50)
    return ClipModule(model, ClipLoss(), lr=10.0, weight_decay=0.1, scheduler="none")


def test_the_learned_temperature_is_clamped_after_each_optimiser_step(clip_module):
    optimizer = clip_module.configure_optimizers()["optimizer"]
    scale = clip_module.model.log_logit_scale

    def closure() -> torch.Tensor:  # a loss that pushes 1/τ up, as a sharpening model would
        optimizer.zero_grad()
        loss = -scale
        loss.backward()
        return loss

    for _ in range(3):
        clip_module.optimizer_step(0, 0, optimizer, closure)
        assert scale.item() == pytest.approx(math.log(100.0))
    assert clip_module.model.logit_scale.item() == pytest.approx(100.0)


def test_no_weight_decay_on_temperature_biases_and_norm_scales(clip_module):
    optimizer = clip_module.configure_optimizers()["optimizer"]
    decay_of = {
        id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]
    }
    named = dict(clip_module.named_parameters())
    assert len(decay_of) == len(named)  # every parameter once
    for name, parameter in named.items():
        exempt = parameter.ndim < 2  # biases, LayerNorm/BatchNorm scales, the log scale
        assert decay_of[id(parameter)] == (0.0 if exempt else 0.1), name
    assert decay_of[id(clip_module.model.log_logit_scale)] == 0.0
    assert any(
        "embeddings" in name and "norm" in name.lower() and decay_of[id(p)] == 0.0
        for name, p in named.items()
    )
