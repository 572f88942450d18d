"""Shared fixtures: a small prepared phantom dataset and an untrained tiny CLIP for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chestclip.config import PrepareConfig
from chestclip.data import PreparedData, prepare_dataset
from chestclip.models import ChestCLIP, ChestCLIPConfig, build_clip, build_tokenizer


@pytest.fixture(scope="session")
def small_data(phantom_kaggle: Path, tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    """The 40 ``phantom_kaggle`` studies prepared at 64 px."""
    out = tmp_path_factory.mktemp("retrieval") / "prepared"
    prepare_dataset(phantom_kaggle, out, PrepareConfig(image_size=64, workers=1))
    return PreparedData(out)


@pytest.fixture(scope="session")
def tiny_clip(small_data: PreparedData) -> tuple[ChestCLIP, object]:
    """An untrained tiny CLIP (eval mode) and a tokenizer trained on the dataset's reports."""
    tokenizer = build_tokenizer("tiny-bert", small_data.studies["text"].tolist(), 200)
    config = ChestCLIPConfig(
        image_encoder="tiny-resnet", text_encoder="tiny-bert", embed_dim=32, image_size=64,
        text_pooling="mean",
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_clip(config, vocab_size=len(tokenizer)).eval()
    return model, tokenizer
