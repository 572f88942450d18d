"""Batches of (X-ray, tokenised report) pairs for contrastive training."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, default_collate
from transformers import PreTrainedTokenizerBase

from chestclip.data import PreparedData, XrayReportDataset
from chestclip.data.streaming import ShardStream


class PairCollator:
    """Stacks images and pads report tokens. Every distinct text is tokenised once, up front,
    so workers never run the tokenizer (and the fast tokenizer is never forked mid-use)."""

    def __init__(self, tokens: list[Tensor], pad_token_id: int):
        self.tokens, self.pad_token_id = tokens, pad_token_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Tensor]:
        ids = [self.tokens[item["text_index"]] for item in items]
        input_ids = pad_sequence(ids, batch_first=True, padding_value=self.pad_token_id)
        return {
            # default_collate stacks straight into shared memory in a DataLoader worker
            "pixels": default_collate([item["image"] for item in items]),  # [B, 1, S, S]
            "input_ids": input_ids,  # [B, L]
            "attention_mask": (input_ids != self.pad_token_id).long()
            if self.pad_token_id is not None
            else torch.ones_like(input_ids),
            "study_ids": torch.tensor([item["study_index"] for item in items]),  # [B]
            "text_ids": torch.tensor([item["text_index"] for item in items]),  # [B]
            "labels": torch.tensor([item["label"] for item in items]),  # [B]
        }


def tokenize_texts(
    texts: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int
) -> list[Tensor]:
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=False)
    return [torch.tensor(ids, dtype=torch.long) for ids in encoded["input_ids"]]


class PairDataModule(L.LightningDataModule):
    """Train/val pair loaders over a prepared dataset; augmentation on the training split only.

    A sharded cache streams its training split (``chestclip.data.streaming.ShardStream``: each
    rank and worker reads its own shards, ``seed`` drives their order); validation reads the
    shards by offset like the memory-mapped array.
    """

    def __init__(
        self,
        data: PreparedData,
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int,
        max_text_length: int,
        num_workers: int = 0,
        views: str = "all",
        train_transform: Callable[[Tensor], Tensor] | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.data, self.batch_size, self.num_workers, self.seed = (
            data,
            batch_size,
            num_workers,
            seed,
        )
        self.projection = data.view_filter(views, ("train", "val"), "pre-training")
        self.train_transform = train_transform
        texts = (
            data.studies.drop_duplicates("text_index").sort_values("text_index")["text"].tolist()
        )
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.collate = PairCollator(tokenize_texts(texts, tokenizer, max_text_length), pad_id)

    def dataset(self, split: str, transform: Callable | None = None) -> XrayReportDataset:
        return XrayReportDataset(self.data, split, self.projection, transform)

    def _loader(self, dataset: XrayReportDataset, train: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            # a contrastive batch of one pair has no negatives; drop the ragged last batch
            drop_last=train and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate,
        )

    def train_dataloader(self) -> DataLoader:
        if self.data.cache == "shards":  # whole batches per worker: see ShardStream
            stream = ShardStream(
                self.data, "train", self.projection, self.train_transform, seed=self.seed,
                batch_size=self.batch_size, collate=self.collate,
            )  # fmt: skip
            return DataLoader(
                stream,
                batch_size=None,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,  # keeps each worker's epoch count
            )
        return self._loader(self.dataset("train", self.train_transform), train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), train=False)
