"""The paper's image-only baseline: the image encoder fine-tuned end to end."""

import json

import pandas as pd
import pytest

from chestclip.config import load_run_config
from chestclip.training.finetune import finetune_image_baseline

pytestmark = pytest.mark.slow


def test_finetuned_baseline_scores_val_and_test(prepared_phantoms, tmp_path):
    config = load_run_config("tiny", ["pretrain.epochs=4"])
    directory = finetune_image_baseline(prepared_phantoms, tmp_path, config)
    scores = pd.read_csv(directory / "scores.csv")
    images = pd.read_csv(prepared_phantoms / "images.csv")
    assert set(scores["split"]) == {"val", "test"}
    assert len(scores) == images["split"].isin(["val", "test"]).sum()
    assert scores["score"].between(0, 1).all()
    info = json.loads((directory / "info.json").read_text())
    assert info["image_encoder"] == "tiny-resnet" and 0 <= info["best_epoch"] < 4
    assert (directory / "model.safetensors").is_file() and not (directory / "checkpoints").exists()
