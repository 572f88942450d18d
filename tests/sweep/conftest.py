"""A smaller prepared phantom set than the shared one: a sweep trains a model per trial, so
every trial's cost (features, validation) shrinks with the data."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sweep_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 phantom studies (both labels in every split) prepared at 64 px."""
    from chestclip.config import PrepareConfig
    from chestclip.data import prepare_dataset
    from chestclip.phantom import generate_phantoms

    root = tmp_path_factory.mktemp("sweep-data")
    generate_phantoms(root / "source", 160, image_size=64, layout="kaggle", seed=2, visibility=3)
    return prepare_dataset(root / "source", root / "prepared", PrepareConfig(image_size=64)).out
