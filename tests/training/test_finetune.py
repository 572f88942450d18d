"""The paper's image-only baseline: the image encoder fine-tuned end to end."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from chestclip.config import load_run_config
from chestclip.data import PreparedData
from chestclip.errors import ChestClipError
from chestclip.training.finetune import finetune_image_baseline, load_image_baseline

pytestmark = pytest.mark.slow


def test_finetuned_baseline_scores_val_and_test(prepared_phantoms, tmp_path, validation_curves):
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
    # the kept epoch is the best of the validation curve Lightning logged, and the kept model's
    # validation scores have that AUC
    (curve,) = validation_curves
    assert len(curve.aucs) == 4 and max(curve.aucs) > min(curve.aucs)
    assert info["best_epoch"] == int(np.argmax(curve.aucs))
    assert info["val_auc"] == pytest.approx(max(curve.aucs), abs=1e-6)
    val_scores = scores.query("split == 'val'")
    assert roc_auc_score(val_scores["label"], val_scores["score"]) == pytest.approx(
        info["val_auc"], abs=1e-6
    )

    # the saved classifier reloads offline and reproduces its own validation scores
    classifier, loaded_info = load_image_baseline(tmp_path)
    assert loaded_info == info and not classifier.training
    data = PreparedData(prepared_phantoms)
    val = data.split_images("val")
    pixels = torch.from_numpy(data.array[val["row"].to_numpy()[:8]].astype(np.float32) / 255)
    with torch.no_grad():
        reloaded = classifier(pixels[:, None]).softmax(-1)[:, 1].numpy()
    expected = scores.set_index("image_id").loc[val["image_id"].iloc[:8], "score"].to_numpy()
    np.testing.assert_allclose(reloaded, expected, atol=1e-5)


def test_loading_a_missing_baseline_is_a_one_line_error(tmp_path):
    with pytest.raises(ChestClipError, match="run `chestclip baseline image`"):
        load_image_baseline(tmp_path)
