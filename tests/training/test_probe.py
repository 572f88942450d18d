"""Heads on frozen features of the tiny CLIP trained on phantoms."""

import json
import shutil

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from chestclip.config import load_run_config
from chestclip.data import PreparedData
from chestclip.errors import ChestClipError
from chestclip.evaluation.features import FeatureCache
from chestclip.models import load_clip
from chestclip.models.heads import MLPHead
from chestclip.training.probe import head_features, head_name, load_head, probe
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


def validation_auc_of_saved_head(run, data_dir, name: str) -> float:
    """The saved head, reloaded and scored on the cached validation features, by scikit-learn."""
    head, info = load_head(run / "heads" / name)
    data = PreparedData(data_dir)
    cache = FeatureCache(run, *load_clip(run), data)
    fields = tuple(info["text_fields"]) if info["text_fields"] else None
    features = torch.from_numpy(head_features(cache, info["kind"], "val", fields))
    with torch.no_grad():
        scores = head(features).softmax(-1)[:, 1].numpy()
    return float(roc_auc_score(data.split_images("val")["label"], scores))


def test_saved_heads_reload_with_their_provenance(probed_run, prepared_phantoms):
    run, _ = probed_run
    head, info = load_head(run / "heads/multimodal")
    assert info["inputs"] == ["image", "text"] and info["text_fields"] == ["indication", "findings"]
    assert info["in_dim"] == 2 * 64 and not head.training
    # the saved weights are the ones head.json describes: they score its validation AUC again
    for name in ("multimodal", "image", "text_indication"):
        recorded = json.loads((run / "heads" / name / "head.json").read_text())["val_auc"]
        assert validation_auc_of_saved_head(run, prepared_phantoms, name) == pytest.approx(
            recorded, abs=1e-6
        ), name
    image_info = json.loads((run / "heads/image/head.json").read_text())
    assert image_info["text_fields"] is None and image_info["in_dim"] == 64
    assert (run / "features/image_train.npz").is_file()  # cached for the next probe
    # each head records what its features came from: CLIP weights, dataset, report sections
    layout = RunLayout(run)
    ablation = json.loads((layout.head("text_indication") / "head.json").read_text())
    assert ablation["fingerprint"] == layout.features_fingerprint(prepared_phantoms, ["indication"])
    assert image_info["fingerprint"]["clip_sha256"] == layout.clip_sha256()
    assert image_info["fingerprint"]["text_fields"] is None


def test_a_head_keeps_its_best_validation_epoch(
    probed_run, prepared_phantoms, tmp_path, validation_curves
):
    run = tmp_path / "run"
    shutil.copytree(probed_run[0], run)  # with its cached features
    config = load_run_config("tiny", ["probe.ablation=[]"])
    probe(run, prepared_phantoms, config, kinds=("image",))
    (curve,) = validation_curves
    info = json.loads((run / "heads/image/head.json").read_text())
    assert max(curve.aucs) > min(curve.aucs)  # a curve to choose on
    assert info["best_epoch"] == int(np.argmax(curve.aucs))
    assert info["val_auc"] == pytest.approx(max(curve.aucs), abs=1e-6)
    assert validation_auc_of_saved_head(run, prepared_phantoms, "image") == pytest.approx(
        max(curve.aucs), abs=1e-6
    )


def test_head_names_and_bad_kind(trained_run, prepared_phantoms):
    assert head_name("multimodal", ("indication",)) == "multimodal_indication"
    assert head_name("image", ("indication",)) == "image"
    with pytest.raises(ChestClipError, match="unknown head kind"):
        probe(trained_run.run, prepared_phantoms, load_run_config("tiny"), kinds=("vision",))


def test_ablation_heads_follow_the_config(probed_run, prepared_phantoms, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(probed_run[0], run)  # with its cached features
    config = load_run_config("tiny", ["probe.epochs=1", "probe.ablation=[]"])
    assert {h.name for h in probe(run, prepared_phantoms, config, kinds=("text",))} == {"text"}
    config = load_run_config("tiny", ["probe.epochs=1", "probe.ablation=[indication, findings]"])
    names = {h.name for h in probe(run, prepared_phantoms, config, kinds=("image", "text"))}
    assert names == {"image", "text", "text_indication", "text_findings"}
