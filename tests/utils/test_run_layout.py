"""RunLayout: the run directory's paths (unchanged on disk) and the fingerprints that make a head
of an older CLIP, or of another dataset, refused instead of scored."""

import hashlib
import json
import shutil

import pytest
import torch

from chestclip.errors import ChestClipError
from chestclip.utils.run_layout import RunLayout, StaleArtefactError, prepared_identity


def test_paths_are_the_documented_layout(tmp_path):
    layout = RunLayout(tmp_path)
    expected = {
        layout.config: "config.yaml",
        layout.env: "env.json",
        layout.clip_weights: "clip/model.safetensors",
        layout.training_data: "clip/data.json",
        layout.last_checkpoint: "checkpoints/last.ckpt",
        layout.head("multimodal"): "heads/multimodal",
        layout.baseline("image-finetuned"): "baselines/image-finetuned",
        layout.features: "features",
        layout.metrics: "eval/metrics.json",
        layout.predictions: "eval/predictions.csv",
        layout.plot("roc"): "plots/roc.png",
        layout.faithfulness: "explain/faithfulness.json",
        layout.zeroshot_metrics: "zeroshot/metrics.json",
        layout.retrieval_index("train"): "retrieval/index-train",
        layout.report: "report.html",
        layout.model_card: "MODEL_CARD.md",
        layout.stage_record("probe"): "stages/probe.json",
        layout.trial(7): "trials/0007",
        layout.finding_head("image"): "heads/findings/image",
        layout.findings_metrics: "eval/findings.json",
        layout.findings_predictions: "eval/findings_predictions.csv",
    }
    for path, relative in expected.items():
        assert path == tmp_path / relative


def test_multilabel_heads_are_listed_apart_from_the_binary_heads(tmp_path):
    layout = RunLayout(tmp_path)
    for directory in (layout.head("image"), layout.finding_head("image")):
        directory.mkdir(parents=True)
        (directory / "head.json").write_text("{}")
    assert layout.head_dirs() == [layout.head("image")]
    assert layout.finding_head_dirs() == [layout.finding_head("image")]


def write_weights(layout: RunLayout, payload: bytes) -> None:
    layout.clip.mkdir(parents=True, exist_ok=True)
    layout.clip_weights.write_bytes(payload)


def test_clip_hash_is_the_content_hash_cached_until_the_weights_change(tmp_path):
    layout = RunLayout(tmp_path)
    write_weights(layout, b"weights one")
    assert layout.clip_sha256() == hashlib.sha256(b"weights one").hexdigest()
    cache = json.loads((layout.clip / "weights.sha256.json").read_text())
    assert cache["sha256"] == layout.clip_sha256() and cache["size"] == len(b"weights one")
    write_weights(layout, b"other weights")
    assert layout.clip_sha256() == hashlib.sha256(b"other weights").hexdigest()


def test_missing_weights_are_one_line(tmp_path):
    with pytest.raises(ChestClipError, match=r"model.safetensors: missing; run `chestclip"):
        RunLayout(tmp_path).clip_sha256()


def test_a_reprepared_dataset_is_another_dataset(tmp_path):
    (tmp_path / "summary.json").write_text('{"created": "2024-01-01"}')
    first = prepared_identity(tmp_path)
    (tmp_path / "summary.json").write_text('{"created": "2024-01-02"}')
    assert prepared_identity(tmp_path) != first


def test_check_head_names_the_head_and_what_to_rerun(tmp_path):
    layout = RunLayout(tmp_path / "run")
    write_weights(layout, b"current")
    data = tmp_path / "prepared"
    data.mkdir()
    (data / "summary.json").write_text("{}")
    head = layout.head("image")
    current = layout.features_fingerprint(data)
    layout.check_head(head, {"fingerprint": current}, data)  # fresh: no error
    older = {**current, "clip_sha256": hashlib.sha256(b"older").hexdigest()}
    with pytest.raises(StaleArtefactError, match=r"heads/image: stale head.*rerun `chestclip"):
        layout.check_head(head, {"fingerprint": older})
    other_data = {**current, "data_sha256": "0" * 64}
    layout.check_head(head, {"fingerprint": other_data})  # predict: no dataset to compare
    with pytest.raises(StaleArtefactError, match="another prepared dataset"):
        layout.check_head(head, {"fingerprint": other_data}, data)
    with pytest.raises(StaleArtefactError, match="records no features fingerprint"):
        layout.check_head(head, {"name": "image"})


@pytest.mark.slow
def test_a_stale_head_is_refused_by_evaluate_and_predict(
    evaluated_run, prepared_phantoms, xray_files, tmp_path
):
    """The run's CLIP replaced (as `run` does when its config changes) while the heads stay."""
    from click.testing import CliRunner

    from chestclip.cli import cli
    from chestclip.config import load_run_config
    from chestclip.evaluation.evaluate import evaluate
    from chestclip.inference.predict import predict_files
    from chestclip.models import load_clip, save_clip

    run = tmp_path / "run"
    shutil.copytree(evaluated_run, run)
    layout = RunLayout(run)
    model, tokenizer = load_clip(run)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    training_data = layout.training_data.read_bytes()  # save_clip writes the model files only
    save_clip(model, tokenizer, layout.clip)
    layout.training_data.write_bytes(training_data)

    with pytest.raises(StaleArtefactError, match="stale head"):
        evaluate(run, prepared_phantoms, load_run_config("tiny"), n_boot=0)
    with pytest.raises(StaleArtefactError, match="stale head"):
        list(predict_files(run, [xray_files["png"]]))
    result = CliRunner().invoke(cli, ["predict", "--run", str(run), str(xray_files["png"])])
    assert result.exit_code == 1 and isinstance(result.exception, StaleArtefactError)
    message = str(result.exception)  # what `chestclip` prints after "chestclip: error: "
    assert "\n" not in message and "heads/" in message and "chestclip probe" in message
