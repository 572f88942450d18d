"""Training pairs streamed from a sharded cache: whole batches per worker, so an epoch has as
many batches as the loader reports (else Lightning never reaches its validation)."""

import pytest

from chestclip.config import PrepareConfig
from chestclip.data import PreparedData, prepare_dataset
from chestclip.models.tokenization import train_wordpiece_tokenizer
from chestclip.phantom import generate_phantoms
from chestclip.training.datamodule import PairDataModule


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    generate_phantoms(root / "source", 60, 48, "mimic", seed=5)
    config = PrepareConfig(image_size=16, cache="shards", shard_size=9, workers=1)
    return PreparedData(prepare_dataset(root / "source", root / "prepared", config).out)


@pytest.mark.parametrize("workers", [0, 2])
def test_every_worker_yields_whole_batches(sharded, workers):
    tokenizer = train_wordpiece_tokenizer(sharded.studies["text"], vocab_size=200)
    module = PairDataModule(sharded, tokenizer, batch_size=7, max_text_length=32,
                            num_workers=workers, seed=1)  # fmt: skip
    loader = module.train_dataloader()
    batches = list(loader)
    n_train = len(sharded.split_images("train"))
    assert len(loader) == len(batches) == n_train // 7
    assert {len(b["pixels"]) for b in batches} == {7}
    assert batches[0]["pixels"].shape[1:] == (1, 16, 16) and batches[0]["input_ids"].ndim == 2
    assert len(list(module.val_dataloader().dataset)) == len(sharded.split_images("val"))
