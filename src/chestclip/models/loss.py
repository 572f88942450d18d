"""Multi-positive InfoNCE for X-ray/report pairs, with an all-gather across ranks.

The paper's loss (eq. 1-2) is CLIP's InfoNCE: for row i,
``L_i = -log exp(s_ii / τ) / Σ_j exp(s_ij / τ)``, averaged over both directions.

IU X-Ray breaks its one-positive-per-row assumption: the frontal and lateral views of a study share
one report, and hundreds of normal studies have word-for-word identical reports. Plain InfoNCE would
push an image away from a text that describes it exactly. Here a row's positives ``P(i)`` are every
column of the same study or with the same (cleaned) text, and

    L_i = -log Σ_{j ∈ P(i)} exp(s_ij) / Σ_j exp(s_ij)        (s_ij already scaled by 1/τ)

which is exactly the paper's loss when ``P(i) = {i}``. We keep duplicates in the batch rather than
sampling batches without them: with hundreds of identical normal reports, batches free of
duplicates would be nearly impossible to fill and would under-sample the most common class.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor, nn

Direction = Literal["symmetric", "image_to_text", "text_to_image"]
DIRECTIONS: tuple[str, ...] = ("symmetric", "image_to_text", "text_to_image")


def world_rank_and_size() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from every rank along dim 0, keeping the autograd graph.  # [W*B, ...]

    Gradients flow back to each rank's own rows (summed over the ranks' losses), as in open_clip's
    ``gather_with_grad``. Every rank must pass the same shape. Outside a process group, or with one
    rank, the tensor is returned unchanged.
    """
    _, world_size = world_rank_and_size()
    if world_size == 1:
        return tensor
    # torch.distributed.nn's all_gather is differentiable on every torch >= 2.2 and backend (gloo
    # included). torch 2.13 deprecates it with a FutureWarning, shown once per call site, in favour
    # of a private functional collective that older torch lacks.
    return torch.cat(dist_fn.all_gather(tensor), dim=0)


def positive_mask(
    row_study_ids: Tensor, col_study_ids: Tensor, row_text_ids: Tensor, col_text_ids: Tensor
) -> Tensor:
    """Pairs never to push apart: same study or identical text.  # [B_rows, B_cols] bool"""
    same_study = row_study_ids[:, None] == col_study_ids[None, :]
    same_text = row_text_ids[:, None] == col_text_ids[None, :]
    return same_study | same_text


def multi_positive_nce(logits: Tensor, positives: Tensor) -> Tensor:
    """Mean over rows of ``-log Σ_{P(i)} exp(logits) / Σ_j exp(logits)``.  # scalar

    ``logits`` [R, C] are scaled similarities; ``positives`` [R, C] bool, at least one per row.
    """
    log_all = torch.logsumexp(logits, dim=1)
    log_positive = torch.logsumexp(logits.masked_fill(~positives, float("-inf")), dim=1)
    return (log_all - log_positive).mean()


class ClipLoss(nn.Module):
    """Multi-positive InfoNCE between L2-normalised image and text embeddings.

    Under ``torch.distributed`` (world size > 1) embeddings and ids are gathered from every rank
    with gradients; each rank scores its local rows against all global columns, so the mean of the
    ranks' losses equals the single-process loss on the concatenated global batch (DDP averages the
    gradients, which gives that loss's gradient). Local batches must have equal size on all ranks.
    """

    def __init__(self, direction: Direction = "symmetric") -> None:
        super().__init__()
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.direction = direction

    def forward(
        self,
        image_emb: Tensor,
        text_emb: Tensor,
        logit_scale: Tensor | float,
        study_ids: Tensor | None = None,
        text_ids: Tensor | None = None,
    ) -> Tensor:
        """Loss of a batch of pairs.  # scalar

        Args:
            image_emb: ``[B, D]`` L2-normalised image embeddings.
            text_emb: ``[B, D]`` L2-normalised text embeddings; row i is the report of image i.
            logit_scale: ``1/τ`` (tensor or float).
            study_ids: ``[B]`` int64 study of each pair; None means every pair is its own study.
            text_ids: ``[B]`` int64 id of each pair's cleaned text (identical texts share an id);
                None means every text is distinct.
        """
        if image_emb.shape != text_emb.shape or image_emb.ndim != 2:
            raise ValueError(
                f"image_emb and text_emb must both be [B, D], got {tuple(image_emb.shape)} "
                f"and {tuple(text_emb.shape)}"
            )
        rank, _ = world_rank_and_size()
        batch = image_emb.shape[0]
        # Default ids are the global row indices: one positive per row (the paper's loss).
        row_index = torch.arange(batch, device=image_emb.device) + rank * batch
        study_ids = row_index if study_ids is None else study_ids.to(image_emb.device)
        text_ids = row_index if text_ids is None else text_ids.to(image_emb.device)

        all_image = gather_with_grad(image_emb)  # [N, D], N = world_size * B
        all_text = gather_with_grad(text_emb)  # [N, D]
        positives = positive_mask(
            study_ids, gather_with_grad(study_ids), text_ids, gather_with_grad(text_ids)
        )  # [B, N]; symmetric in meaning, so it serves both directions

        losses = []
        if self.direction in ("symmetric", "image_to_text"):
            losses.append(multi_positive_nce(logit_scale * image_emb @ all_text.T, positives))
        if self.direction in ("symmetric", "text_to_image"):
            losses.append(multi_positive_nce(logit_scale * text_emb @ all_image.T, positives))
        return torch.stack(losses).mean()
