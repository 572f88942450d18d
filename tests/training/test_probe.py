"""Heads on frozen features of the tiny CLIP trained on phantoms."""

import json

import pytest
import torch

from chestclip.config import load_run_config
from chestclip.errors import ChestClipError
from chestclip.models.heads import MLPHead
from chestclip.training.probe import head_name, load_head, probe
from chestclip.utils.run_layout import RunLayout

pytestmark = pytest.mark.slow


def test_paper_head_shape():
    head = MLPHead(1024, (512, 512))
    assert [m.out_features for m in head.net if isinstance(m, torch.nn.Linear)] == [512, 512, 2]
    assert head(torch.zeros(3, 1024)).shape == (3, 2)


def test_heads_beat_chance_on_validation(probed_run):
    _, heads = probed_run
    ablation = {"multimodal_indication", "text_indication"}  # probe.ablation: [indication]
    assert set(heads) == {"multimodal", "image", "text", *ablation}
    assert heads["image"].val_auc > 0.6
    assert heads["multimodal"].val_auc > 0.8 and heads["text"].val_auc > 0.8


def test_saved_heads_reload_with_their_provenance(probed_run, prepared_phantoms):
    run, heads = probed_run
    head, info = load_head(run / "heads/multimodal")
    assert info["inputs"] == ["image", "text"] and info["text_fields"] == ["indication", "findings"]
    assert info["in_dim"] == 2 * 64 and info["best_epoch"] == heads["multimodal"].best_epoch
    assert not head.training
    image_info = json.loads((run / "heads/image/head.json").read_text())
    assert image_info["text_fields"] is None and image_info["in_dim"] == 64
    assert (run / "features/image_train.npz").is_file()  # cached for the next probe
    # each head records what its features came from: CLIP weights, dataset, report sections
    layout = RunLayout(run)
    ablation = json.loads((layout.head("text_indication") / "head.json").read_text())
    assert ablation["fingerprint"] == layout.features_fingerprint(prepared_phantoms, ["indication"])
    assert image_info["fingerprint"]["clip_sha256"] == layout.clip_sha256()
    assert image_info["fingerprint"]["text_fields"] is None


def test_head_names_and_bad_kind(trained_run, prepared_phantoms):
    assert head_name("multimodal", ("indication",)) == "multimodal_indication"
    assert head_name("image", ("indication",)) == "image"
    with pytest.raises(ChestClipError, match="unknown head kind"):
        probe(trained_run.run, prepared_phantoms, load_run_config("tiny"), kinds=("vision",))


def test_ablation_heads_follow_the_config(probed_run, prepared_phantoms, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(probed_run[0], run)  # with its cached features
    config = load_run_config("tiny", ["probe.epochs=1", "probe.ablation=[]"])
    assert {h.name for h in probe(run, prepared_phantoms, config, kinds=("text",))} == {"text"}
    config = load_run_config("tiny", ["probe.epochs=1", "probe.ablation=[indication, findings]"])
    names = {h.name for h in probe(run, prepared_phantoms, config, kinds=("image", "text"))}
    assert names == {"image", "text", "text_indication", "text_findings"}
