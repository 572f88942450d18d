"""Stream a split's images from the tar shards with WebDataset, for training at scale.

Each DataLoader worker of each rank opens shards by itself, from ``PreparedData.shards_url``: a
local disk, a shared file system, ``pipe:`` commands or an fsspec URL (``s3://``, ``gs://``), so
no node needs a copy. Items are those of ``XrayReportDataset`` (the tables come from the prepared
directory's CSVs; only pixels stream).

Training draws shards with replacement (WebDataset's ``ResampledShards``, as open_clip does
across nodes): every rank and worker gets the same number of items per epoch whatever the shard
count, so DDP ranks never wait on each other, and each image is seen once per epoch on average.
``resampled=False`` reads every item of the split exactly once, shards divided between ranks and
workers (for evaluation or a single process). Shuffling is seeded by (seed, rank, worker); each
worker's stream continues from epoch to epoch, so keep DataLoader workers persistent.

With ``batch_size`` the stream yields collated batches (use ``DataLoader(batch_size=None)``), as
open_clip does: each worker yields whole batches, so every rank yields exactly ``len()`` batches
per epoch. Batching in the DataLoader instead would leave a partial batch per worker and end the
epoch before Lightning's count (no validation would run).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset
from webdataset.tariterators import group_by_keys, tar_file_expander
from webdataset.utils import pytorch_worker_info

from chestclip.data.dataset import ItemFields, PreparedData, to_image_tensor
from chestclip.data.shards import decode_npy, join_url, open_url

SHUFFLE_BUFFER = 2000


def _open_shards(urls: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for sample in urls:
        yield {**sample, "stream": open_url(sample["url"])}


class ShardStream(IterableDataset):
    """The images of one split (optionally one projection) streamed from the shards.

    ``len()`` is what one rank yields per epoch: the split's size divided by the number of ranks
    (rounded up) items, or that many // ``batch_size`` batches (``collate``d; with
    ``resampled=False`` a last partial batch too). Items: ``XrayReportDataset``'s.
    """

    def __init__(
        self,
        data: PreparedData,
        split: str,
        projection: str | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        resampled: bool = True,
        seed: int = 0,
        shuffle_buffer: int = SHUFFLE_BUFFER,
        batch_size: int | None = None,
        collate: Callable[[list[dict[str, Any]]], Any] | None = None,
    ):
        if data.cache != "shards":
            raise ValueError(f"{data.root}: not prepared with a sharded cache")
        table = data.split_images(split, projection)
        index = data.shard_index
        keys = index.loc[table["row"].to_numpy(), "key"].to_numpy()
        self.position = {key: i for i, key in enumerate(keys)}  # tar key → row of ``fields``
        self.fields = ItemFields(data, table)
        shards = sorted(set(index.loc[table["row"].to_numpy(), "shard"]))
        self.urls = [join_url(data.shards_url, name) for name in shards]
        self.transform, self.resampled, self.seed = transform, resampled, seed
        self.image_size = int(data.summary["image_size"])
        self.shuffle_buffer = shuffle_buffer if resampled else 0
        self.batch_size, self.collate = batch_size, collate
        self._endless: Iterator | None = None  # the resampled stream of this process

    def __len__(self) -> int:
        _, world_size, _, _ = pytorch_worker_info()
        items = math.ceil(len(self.fields) / world_size)
        if self.batch_size is None:
            return items
        return items // self.batch_size if self.resampled else math.ceil(items / self.batch_size)

    def _item(self, sample: dict[str, Any]) -> dict[str, Any]:
        pixels = decode_npy(sample["npy"], self.image_size)
        fields = self.fields[self.position[sample["__key__"]]]
        return {"image": to_image_tensor(pixels, self.transform), **fields}

    def _wanted(self, name: str) -> bool:
        """Whether a tar member belongs to this split (others are skipped unread)."""
        return name.split(".", 1)[0] in self.position

    def _pipeline(self, source: list, seed: int) -> wds.DataPipeline:
        stages = [*source, _open_shards, partial(tar_file_expander, select_files=self._wanted),
                  group_by_keys]  # fmt: skip
        if self.shuffle_buffer:
            stages.append(wds.shuffle(self.shuffle_buffer, self.shuffle_buffer // 2, seed=seed))
        stages.append(wds.map(self._item))
        if self.batch_size is not None:
            collate = self.collate or (lambda items: items)
            stages.append(wds.batched(self.batch_size, collation_fn=collate,
                                      partial=not self.resampled))  # fmt: skip
        return wds.DataPipeline(*stages)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, _, worker, workers = pytorch_worker_info()
        if not self.resampled:
            source = [wds.SimpleShardList(self.urls), wds.split_by_node, wds.split_by_worker]
            yield from self._pipeline(source, seed=0)
            return
        # Resampled shards never end: one endless stream per worker, kept between epochs (the
        # shuffle buffer carries over, nothing read is dropped); an epoch is this worker's share
        # of len(self). Seeded by (seed, rank, worker): ResampledShards mixes rank and worker in.
        if self._endless is None:
            seed = int(np.random.SeedSequence([self.seed, rank, worker]).generate_state(1)[0])
            shards = wds.ResampledShards(self.urls, seed=self.seed, deterministic=True)
            self._endless = iter(self._pipeline([shards], seed))
        share, extra = divmod(len(self), workers)
        yield from itertools.islice(self._endless, share + (worker < extra))

    def __getstate__(self) -> dict[str, Any]:  # a worker starts its own stream
        return {**self.__dict__, "_endless": None}
