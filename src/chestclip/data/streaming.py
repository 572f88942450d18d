"""Stream a split's images from the tar shards with WebDataset, for training at scale.

Each DataLoader worker of each rank opens shards by itself, from ``PreparedData.shards_url``: a
local disk, a shared file system, ``pipe:`` commands or an fsspec URL (``s3://``, ``gs://``), so
no node needs a copy. Items are those of ``XrayReportDataset`` (the tables come from the prepared
directory's CSVs; only pixels stream).

Training draws shards with replacement (WebDataset's ``ResampledShards``, as open_clip does
across nodes): every rank and worker gets the same number of items per epoch whatever the shard
count, so DDP ranks never wait on each other, and each image is seen once per epoch on average.
``resampled=False`` reads every item of the split exactly once, shards divided between ranks and
workers (for evaluation or a single process). Shuffling is seeded by (seed, epoch, rank, worker).

With ``batch_size`` the stream yields collated batches (use ``DataLoader(batch_size=None)``), as
open_clip does: each worker yields whole batches, so every rank yields exactly ``len()`` batches
per epoch. Batching in the DataLoader instead would leave a partial batch per worker and end the
epoch before Lightning's count (no validation would run).
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset
from webdataset.tariterators import group_by_keys, tar_file_expander
from webdataset.utils import pytorch_worker_info

from chestclip.data.dataset import PreparedData, item_records, to_image_tensor
from chestclip.data.shards import join_url, open_url

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
        self.records = dict(zip(keys, item_records(data, table), strict=True))
        shards = sorted(set(index.loc[table["row"].to_numpy(), "shard"]))
        self.urls = [join_url(data.shards_url, name) for name in shards]
        self.transform, self.resampled, self.seed = transform, resampled, seed
        self.shuffle_buffer = shuffle_buffer if resampled else 0
        self.batch_size, self.collate = batch_size, collate
        self.epoch = -1  # advanced by each __iter__ (workers persist between epochs)

    def __len__(self) -> int:
        _, world_size, _, _ = pytorch_worker_info()
        items = math.ceil(len(self.records) / world_size)
        if self.batch_size is None:
            return items
        return items // self.batch_size if self.resampled else math.ceil(items / self.batch_size)

    def _item(self, sample: dict[str, Any]) -> dict[str, Any]:
        pixels = np.load(io.BytesIO(sample["npy"]), allow_pickle=False)
        return {"image": to_image_tensor(pixels, self.transform), **self.records[sample["__key__"]]}

    def _seed(self, *parts: int) -> int:
        return int(np.random.SeedSequence([self.seed, self.epoch, *parts]).generate_state(1)[0])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.epoch += 1
        rank, _, worker, workers = pytorch_worker_info()
        if self.resampled:  # ResampledShards mixes in rank and worker itself
            source = [wds.ResampledShards(self.urls, seed=self._seed(), deterministic=True)]
        else:
            source = [wds.SimpleShardList(self.urls), wds.split_by_node, wds.split_by_worker]
        stages = [
            *source,
            _open_shards,
            tar_file_expander,
            group_by_keys,
            wds.select(lambda sample: sample["__key__"] in self.records),
        ]
        if self.shuffle_buffer:
            seed = self._seed(rank, worker)
            stages.append(wds.shuffle(self.shuffle_buffer, self.shuffle_buffer // 2, seed=seed))
        stages.append(wds.map(self._item))
        if self.batch_size is not None:
            collate = self.collate or (lambda items: items)
            stages.append(wds.batched(self.batch_size, collation_fn=collate,
                                      partial=not self.resampled))  # fmt: skip
        pipeline = wds.DataPipeline(*stages)
        if not self.resampled:
            yield from pipeline
            return
        # resampled shards never end: each rank yields len(self) items (or batches), split among
        # its workers
        share, extra = divmod(len(self), workers)
        yield from itertools.islice(pipeline, share + (worker < extra))
