"""Cross-entropy training of any normal/diseased classifier: MLP heads on frozen features and
the end-to-end fine-tuned image baseline share it. ``MultiLabelModule`` trains a multi-label
head the same way (masked BCE, best epoch by the validation macro ROC-AUC).

Under DDP each rank validates its share of the validation set; the ROC-AUC that chooses the best
epoch is computed on every rank's predictions gathered back into dataset order, so it is the AUC
of the whole validation set, the same on every rank and the same as one process would find.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

from chestclip.models.heads import masked_bce_with_logits
from chestclip.training.trainer import build_trainer


def inputs_and_labels(batch: tuple[Tensor, Tensor] | dict) -> tuple[Tensor, Tensor]:
    """(features, labels) batches of a TensorDataset, or image-dataset dicts."""
    return (batch["image"], batch["label"]) if isinstance(batch, dict) else batch


class ClassifierModule(L.LightningModule):
    """Trains ``classifier`` (inputs → logits [B, 2]); logs validation loss and ROC-AUC."""

    def __init__(self, classifier: nn.Module, optimizer: str, lr: float, weight_decay: float):
        super().__init__()
        self.classifier = classifier
        self.save_hyperparameters(ignore=["classifier"])
        self._val: list[tuple[Tensor, Tensor]] = []

    def training_step(self, batch, batch_idx: int) -> Tensor:
        inputs, labels = inputs_and_labels(batch)
        loss = F.cross_entropy(self.classifier(inputs), labels)
        self.log("train/loss", loss, on_epoch=True, on_step=False, batch_size=len(labels))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        inputs, labels = inputs_and_labels(batch)
        logits = self.classifier(inputs)
        loss = F.cross_entropy(logits, labels)
        self.log("val/loss", loss, batch_size=len(labels), sync_dist=True)
        self._val.append((logits.softmax(-1)[:, 1].float(), labels))

    def on_validation_epoch_end(self) -> None:
        scores, labels = (self.gathered(torch.cat(parts)) for parts in zip(*self._val, strict=True))
        self._val.clear()
        scores, labels = scores.cpu().numpy(), labels.cpu().numpy()
        auc = roc_auc_score(labels, scores) if len(set(labels.tolist())) == 2 else 0.5
        # every rank computed the same AUC from the same gathered predictions
        self.log("val/auc", float(auc), prog_bar=True, sync_dist=True)

    def gathered(self, local: Tensor) -> Tensor:
        """This rank's validation outputs [n] → the whole validation set's, in dataset order.

        A ``DistributedSampler`` (what Lightning puts under DDP) deals sample ``i`` to rank
        ``i % world`` and pads the end with the first samples so every rank gets as many:
        interleaving the gathered [world, n] and cutting at the dataset's length undoes both.
        """
        loader = self.trainer.val_dataloaders
        if self.trainer.world_size == 1 or not isinstance(loader.sampler, DistributedSampler):
            return local  # one process, or every rank saw the whole set
        every_rank = self.all_gather(local)  # [world, n]
        return every_rank.transpose(0, 1).flatten()[: len(loader.dataset)]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = torch.optim.AdamW if self.hparams.optimizer == "adamw" else torch.optim.Adam
        return optimizer(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )


def multilabel_batch(batch: tuple[Tensor, Tensor, Tensor] | dict) -> tuple[Tensor, Tensor, Tensor]:
    """(inputs [B, ...], targets [B, K], mask [B, K]) of a (features, targets, mask)
    TensorDataset batch, or of ``XrayReportDataset`` dicts with findings."""
    if isinstance(batch, dict):
        return batch["image"], batch["findings"], batch["findings_mask"]
    return batch


def macro_auc(scores: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> float:
    """Mean ROC-AUC over the findings whose unmasked targets hold both classes; 0.5 if none."""
    aucs = [
        roc_auc_score(targets[mask[:, k], k], scores[mask[:, k], k])
        for k in range(targets.shape[1])
        if len(np.unique(targets[mask[:, k], k])) == 2
    ]
    return float(np.mean(aucs)) if aucs else 0.5


class MultiLabelModule(ClassifierModule):
    """Trains a multi-label ``classifier`` (inputs → logits [B, K]) with masked BCE; logs the
    validation loss and macro ROC-AUC as ``val/auc``, so ``fit_keep_best`` keeps its best epoch.
    ``pos_weight`` [K] weighs each finding's positives (rare findings)."""

    def __init__(
        self,
        classifier: nn.Module,
        optimizer: str,
        lr: float,
        weight_decay: float,
        pos_weight: Tensor | None = None,
    ):
        super().__init__(classifier, optimizer, lr, weight_decay)
        self.register_buffer("pos_weight", pos_weight, persistent=False)
        self._val_parts: list[tuple[Tensor, Tensor, Tensor]] = []

    def _loss(self, batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        inputs, targets, mask = multilabel_batch(batch)
        logits = self.classifier(inputs)
        return masked_bce_with_logits(logits, targets, mask, self.pos_weight), logits, targets, mask

    def training_step(self, batch, batch_idx: int) -> Tensor:
        loss, _, targets, _ = self._loss(batch)
        self.log("train/loss", loss, on_epoch=True, on_step=False, batch_size=len(targets))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, logits, targets, mask = self._loss(batch)
        self.log("val/loss", loss, batch_size=len(targets))
        self._val_parts.append((logits.sigmoid().float(), targets, mask))

    def on_validation_epoch_end(self) -> None:
        scores, targets, mask = (
            torch.cat(p).cpu().numpy() for p in zip(*self._val_parts, strict=True)
        )
        self._val_parts.clear()
        self.log("val/auc", macro_auc(scores, targets, mask.astype(bool)), prog_bar=True)


def fit_keep_best(
    module: ClassifierModule, train: DataLoader, val: DataLoader, workdir: Path, **trainer_options
) -> tuple[int, float]:
    """Train, then reload the epoch with the best validation AUC into ``module`` (on every rank).

    Returns (best epoch, its validation AUC). Checkpoints go to ``workdir/checkpoints`` (rank 0's
    under DDP, where every rank reads them) and are removed afterwards: the caller saves the
    chosen weights in its own format.
    """
    best = ModelCheckpoint(
        dirpath=workdir / "checkpoints", monitor="val/auc", mode="max", save_top_k=1
    )
    options = {"logger": False, "enable_model_summary": False} | trainer_options
    trainer = build_trainer(callbacks=[best], **options)
    trainer.fit(module, train, val)
    state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    # under DDP every rank reads rank 0's checkpoint (its directory is broadcast) before it goes
    trainer.strategy.barrier("checkpoint read")
    if trainer.is_global_zero:
        shutil.rmtree(best.dirpath)
    return int(state["epoch"]), float(best.best_model_score)
