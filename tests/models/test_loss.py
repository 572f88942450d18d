"""ClipLoss: the paper's InfoNCE, its multi-positive form, and its directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from chestclip.models import ClipLoss, multi_positive_nce, positive_mask


def unit_rows(rows: int, dim: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(rows, dim, generator=generator, dtype=torch.float64), dim=-1)


def hand_loss(
    image: np.ndarray, text: np.ndarray, scale: float, positives: np.ndarray, direction: str
) -> float:
    """Eq. 1-2 with several positives, written out with exp and sums."""
    logits = {"image_to_text": scale * image @ text.T, "text_to_image": scale * text @ image.T}
    directions = ["image_to_text", "text_to_image"] if direction == "symmetric" else [direction]
    per_direction = []
    for name in directions:
        exp = np.exp(logits[name])
        rows = [-math.log(exp[i, positives[i]].sum() / exp[i].sum()) for i in range(len(exp))]
        per_direction.append(np.mean(rows))
    return float(np.mean(per_direction))


@pytest.mark.parametrize("direction", ["symmetric", "image_to_text", "text_to_image"])
def test_one_positive_per_row_matches_hand_computation_and_cross_entropy(direction: str) -> None:
    image, text = unit_rows(5, 8, seed=0), unit_rows(5, 8, seed=1)
    loss = ClipLoss(direction)(image, text, 10.0)

    expected = hand_loss(image.numpy(), text.numpy(), 10.0, np.eye(5, dtype=bool), direction)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    # ... which is open_clip's formulation: cross-entropy against the diagonal.
    labels = torch.arange(5)
    i2t = F.cross_entropy(10.0 * image @ text.T, labels)
    t2i = F.cross_entropy(10.0 * text @ image.T, labels)
    reference = {"symmetric": (i2t + t2i) / 2, "image_to_text": i2t, "text_to_image": t2i}
    torch.testing.assert_close(loss, reference[direction])


@pytest.mark.parametrize("direction", ["symmetric", "image_to_text"])
def test_multi_positive_matches_hand_computation(direction: str) -> None:
    image, text = unit_rows(6, 8, seed=2), unit_rows(6, 8, seed=3)
    study_ids = torch.tensor([0, 0, 1, 2, 3, 4])  # rows 0, 1: two views of one study
    text_ids = torch.tensor([7, 7, 5, 9, 5, 6])  # rows 2, 4: word-for-word identical reports
    loss = ClipLoss(direction)(image, text, torch.tensor(10.0), study_ids, text_ids)

    positives = np.eye(6, dtype=bool)
    for i, j in [(0, 1), (1, 0), (2, 4), (4, 2)]:
        positives[i, j] = True
    expected = hand_loss(image.numpy(), text.numpy(), 10.0, positives, direction)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_positive_mask_is_same_study_or_same_text() -> None:
    mask = positive_mask(
        torch.tensor([0, 0, 1]),
        torch.tensor([0, 0, 1]),
        torch.tensor([3, 4, 4]),
        torch.tensor([3, 4, 4]),
    )
    assert mask.tolist() == [[True, True, False], [True, True, True], [False, True, True]]


def test_positive_pairs_are_never_pushed_apart() -> None:
    """d loss / d s_ij <= 0 for every positive pair; plain InfoNCE pushes the same pair apart."""
    logits = (10.0 * unit_rows(4, 8, seed=4) @ unit_rows(4, 8, seed=5).T).requires_grad_()
    positives = positive_mask(
        *(torch.tensor([0, 0, 1, 2]),) * 2, *(torch.tensor([0, 1, 2, 3]),) * 2
    )
    multi_positive_nce(logits, positives).backward()
    assert (logits.grad[positives] < 0).all()

    plain = logits.detach().clone().requires_grad_()
    F.cross_entropy(plain, torch.arange(4)).backward()
    assert plain.grad[0, 1] > 0 and plain.grad[1, 0] > 0  # same study, yet a "negative"


def test_batch_of_identical_reports_costs_nothing_image_to_text() -> None:
    image, text = unit_rows(4, 8, seed=6), unit_rows(1, 8, seed=7).expand(4, -1)
    same_text = torch.zeros(4, dtype=torch.long)
    loss = ClipLoss("image_to_text")(image, text, 10.0, torch.arange(4), same_text)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    plain = ClipLoss("image_to_text")(image, text, 10.0)
    assert plain.item() == pytest.approx(math.log(4))


def test_logit_scale_gets_a_gradient() -> None:
    scale = torch.tensor(10.0, dtype=torch.float64, requires_grad=True)
    ClipLoss()(unit_rows(4, 8, seed=8), unit_rows(4, 8, seed=9), scale).backward()
    assert scale.grad is not None and scale.grad != 0


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="direction"):
        ClipLoss("both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        ClipLoss()(torch.zeros(3, 4), torch.zeros(2, 4), 10.0)
