"""Inputs a run should refuse, and a run whose heads and guard saw frontal films only."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def outlier_files(prepared_phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A photograph-like scene, a blank mid-grey film and a lateral test film, as files."""
    from chestclip.phantom.outliers import photo

    folder = tmp_path_factory.mktemp("outliers")
    images = pd.read_csv(prepared_phantoms / "images.csv")
    lateral = images.query("projection == 'Lateral' and split == 'test'")["file"].iloc[0]
    paths = {
        "photo": folder / "photo.jpg",
        "blank": folder / "blank.png",
        "lateral": folder / "lateral.png",
    }
    Image.fromarray(photo(np.random.default_rng(0), 300)).save(paths["photo"], quality=90)
    Image.fromarray(np.full((240, 200), 128, np.uint8)).save(paths["blank"])
    shutil.copy(lateral, paths["lateral"])
    return paths


@pytest.fixture(scope="session")
def frontal_run(evaluated_run: Path, prepared_phantoms: Path, tmp_path_factory):
    """A copy of ``evaluated_run`` whose image head and OOD guard were fitted on the frontal
    films of the same phantoms (prepared with ``views: frontal``)."""
    from chestclip.config import PrepareConfig, load_run_config
    from chestclip.data import prepare_dataset
    from chestclip.inference.trust import fit_guard
    from chestclip.training.probe import probe

    root = tmp_path_factory.mktemp("frontal")
    frontal = prepare_dataset(
        prepared_phantoms.parent / "source",
        root / "prepared",
        PrepareConfig(image_size=64, workers=2, views="frontal"),
    ).out
    run = root / "run"
    shutil.copytree(evaluated_run, run)
    probe(run, frontal, load_run_config("tiny"), kinds=("image",))
    fit_guard(run, frontal)
    return run
