"""A stage set to frontal views, on data without any: a warning and every view, never a crash."""

import json
import logging

from chestclip.config import load_run_config
from chestclip.training.finetune import finetune_image_baseline
from chestclip.training.pretrain import pretrain
from chestclip.utils.run_layout import BASELINE_FILE, RunLayout

FRONTAL_ONLY = ["pretrain.epochs=1", "pretrain.views=frontal"]


def test_pretraining_falls_back_to_every_view(lateral_only, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="chestclip.data.dataset"):
        pretrain(lateral_only, tmp_path, load_run_config("tiny", FRONTAL_ONLY))
    assert "no frontal image in split(s) train, val: pre-training uses every view" in caplog.text
    assert json.loads(RunLayout(tmp_path).training_data.read_text())["views_used"] == "all"


def test_image_baseline_falls_back_to_every_view(lateral_only, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="chestclip.data.dataset"):
        directory = finetune_image_baseline(
            lateral_only, tmp_path, load_run_config("tiny", FRONTAL_ONLY)
        )
    assert "the image baseline uses every view" in caplog.text
    assert json.loads((directory / BASELINE_FILE).read_text())["views"] == "all"
