"""Heads on frozen features of the tiny CLIP trained on phantoms."""

import json

import pytest
import torch

from chestclip.config import load_run_config
from chestclip.errors import ChestClipError
from chestclip.models.heads import MLPHead
from chestclip.training.probe import head_name, load_head, probe

pytestmark = pytest.mark.slow


def test_paper_head_shape():
    head = MLPHead(1024, (512, 512))
    assert [m.out_features for m in head.net if isinstance(m, torch.nn.Linear)] == [512, 512, 2]
    assert head(torch.zeros(3, 1024)).shape == (3, 2)


def test_heads_beat_chance_on_validation(probed_run):
    _, heads = probed_run
    assert set(heads) == {"multimodal", "image", "text"}
    assert heads["image"].val_auc > 0.6
    assert heads["multimodal"].val_auc > 0.8 and heads["text"].val_auc > 0.8


def test_saved_heads_reload_with_their_provenance(probed_run):
    run, heads = probed_run
    head, info = load_head(run / "heads/multimodal")
    assert info["inputs"] == ["image", "text"] and info["text_fields"] == ["indication", "findings"]
    assert info["in_dim"] == 2 * 64 and info["best_epoch"] == heads["multimodal"].best_epoch
    assert not head.training
    image_info = json.loads((run / "heads/image/head.json").read_text())
    assert image_info["text_fields"] is None and image_info["in_dim"] == 64
    assert (run / "features/image_train.npz").is_file()  # cached for the next probe


def test_head_names_and_bad_kind(trained_run, prepared_phantoms):
    assert head_name("multimodal", ("indication",)) == "multimodal_indication"
    assert head_name("image", ("indication",)) == "image"
    with pytest.raises(ChestClipError, match="unknown head kind"):
        probe(trained_run.run, prepared_phantoms, load_run_config("tiny"), kinds=("vision",))
