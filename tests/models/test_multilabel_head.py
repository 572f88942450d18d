"""The multi-label head and its masked BCE, against hand-computed values."""

import math

import pytest
import torch

from chestclip.models.heads import MultiLabelHead, masked_bce_with_logits

LN2, SOFTPLUS_2 = math.log(2), math.log(1 + math.e**2)


def test_masked_bce_averages_unmasked_entries_only():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    mask = torch.tensor([[True, True], [False, True]])
    # BCE(0, 1) = ln 2, BCE(2, 0) = ln(1 + e²); the masked (−1, 0) entry does not count
    expected = (LN2 + SOFTPLUS_2 + LN2) / 3
    assert masked_bce_with_logits(logits, targets, mask).item() == pytest.approx(expected)
    weighted = masked_bce_with_logits(logits, targets, mask, pos_weight=torch.tensor([3.0, 1.0]))
    assert weighted.item() == pytest.approx((3 * LN2 + SOFTPLUS_2 + LN2) / 3)


def test_fully_masked_batch_gives_zero_with_a_gradient():
    logits = torch.zeros(2, 3, requires_grad=True)
    loss = masked_bce_with_logits(logits, torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0 and torch.equal(logits.grad, torch.zeros(2, 3))


def test_head_outputs_one_sigmoid_per_named_finding():
    head = MultiLabelHead(8, ["Edema", "Cardiomegaly", "Pneumothorax"], hidden_sizes=(4,))
    features = torch.randn(5, 8)
    assert head(features).shape == (5, 3) and head.finding_names[1] == "Cardiomegaly"
    probabilities = head.probabilities(features)
    assert torch.allclose(probabilities, head(features).sigmoid())
    with pytest.raises(ValueError, match="at least one finding"):
        MultiLabelHead(8, [])
