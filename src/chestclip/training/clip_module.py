"""The LightningModule that trains a ChestCLIP with the multi-positive InfoNCE loss."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from chestclip.models import ChestCLIP, ClipLoss
from chestclip.retrieval.metrics import first_hit_ranks

RECALL_AT = (1, 5)


def image_to_text_recall(
    image_emb: Tensor, text_emb: Tensor, text_ids: Tensor, ks: tuple[int, ...] = RECALL_AT
) -> dict[str, float]:
    """Recall@K of retrieving each image's report among the distinct reports of the set.

    ``image_emb`` [N, D], ``text_emb`` [N, D] and ``text_ids`` [N] are per image; identical texts
    share an id (and an embedding), so the candidates are the distinct texts and a hit is the
    query's own text, which is also every identical report. Chance is K / distinct texts. Ranked
    by ``retrieval.metrics.first_hit_ranks``, ties against the query: a collapsed model that
    embeds everything alike scores 0, not 1.
    """
    unique_ids, inverse = torch.unique(text_ids, return_inverse=True)
    candidates = text_emb.new_zeros(len(unique_ids), text_emb.shape[1]).index_copy_(
        0, inverse, text_emb
    )
    own_text = (inverse[:, None] == torch.arange(len(unique_ids), device=inverse.device)).cpu()
    ranks = first_hit_ranks(
        image_emb.detach().float().cpu().numpy(),
        candidates.detach().float().cpu().numpy(),
        own_text.numpy(),
    )  # [N], 1 = ranked first
    result = {f"recall@{k}": float(np.mean(ranks <= k)) for k in ks}
    result.update({f"chance@{k}": min(1.0, k / len(unique_ids)) for k in ks})
    return result


def weight_decay_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Optimiser parameter groups: ``weight_decay`` on weight matrices and kernels, none on
    parameters with fewer than 2 dimensions — biases, LayerNorm/BatchNorm scales (the embeddings'
    LayerNorm too) and the learned log temperature — open_clip's rule: shrinking those towards 0
    regularises nothing and would pull the temperature towards τ = 1."""
    parameters = [p for p in module.parameters() if p.requires_grad]
    return [
        {"params": [p for p in parameters if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0},
    ]


class ClipModule(L.LightningModule):
    """Wraps a ChestCLIP (a plain nn.Module) for training; optimiser settings are plain args."""

    def __init__(
        self,
        model: ChestCLIP,
        loss: ClipLoss,
        optimizer: str = "adamw",
        lr: float = 1e-5,
        weight_decay: float = 0.01,
        scheduler: str = "plateau",
        plateau_factor: float = 0.1,
        plateau_patience: int = 2,
        step_size: int = 10,
        step_gamma: float = 0.1,
        warmup_epochs: int = 1,
        epochs: int = 30,
    ):
        super().__init__()
        self.model, self.loss = model, loss
        self.save_hyperparameters(ignore=["model", "loss"])
        self._val_outputs: list[tuple[Tensor, Tensor, Tensor]] = []

    def _step(self, batch: dict[str, Tensor]) -> tuple[Tensor, Any]:
        out = self.model(batch["pixels"], batch["input_ids"], batch["attention_mask"])
        loss = self.loss(
            out.image_embeds,
            out.text_embeds,
            out.logit_scale,
            batch["study_ids"],
            batch["text_ids"],
        )
        return loss, out

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, out = self._step(batch)
        size = len(batch["pixels"])
        self.log(
            "train/loss",
            loss,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
            sync_dist=True,
        )
        self.log(
            "train/logit_scale",
            out.logit_scale.detach(),
            on_step=False,
            on_epoch=True,
            batch_size=size,
        )
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, out = self._step(batch)
        self.log(
            "val/loss",
            loss,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(batch["pixels"]),
            sync_dist=True,
        )
        self._val_outputs.append(
            (out.image_embeds.float(), out.text_embeds.float(), batch["text_ids"])
        )

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        image, text, ids = (torch.cat(parts) for parts in zip(*self._val_outputs, strict=True))
        self._val_outputs.clear()
        if self.trainer.world_size > 1:
            image, text, ids = (self.all_gather(t).flatten(0, 1) for t in (image, text, ids))
        for name, value in image_to_text_recall(image, text, ids).items():
            self.log(f"val/{name}", value, prog_bar=name == "recall@5", rank_zero_only=True)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The optimiser's step, then the learned temperature clamped back into its range."""
        super().optimizer_step(*args, **kwargs)
        self.model.clamp_logit_scale()

    def configure_optimizers(self) -> dict[str, Any]:
        h = self.hparams
        optimizer_class = torch.optim.AdamW if h.optimizer == "adamw" else torch.optim.Adam
        optimizer = optimizer_class(weight_decay_groups(self, h.weight_decay), lr=h.lr)
        if h.scheduler == "none":
            return {"optimizer": optimizer}
        if h.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=h.plateau_factor, patience=h.plateau_patience
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"},
            }
        if h.scheduler == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(
                optimizer, step_size=h.step_size, gamma=h.step_gamma
            )
        else:
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, cosine_with_warmup(h.warmup_epochs, h.epochs)
            )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }


def cosine_with_warmup(warmup_epochs: int, epochs: int):
    """LR multiplier per epoch: linear warm-up, then cosine decay to 0 at ``epochs``."""

    def factor(epoch: int) -> float:
        if epoch < warmup_epochs:
            return (epoch + 1) / (warmup_epochs + 1)
        progress = (epoch - warmup_epochs) / max(1, epochs - warmup_epochs)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor
