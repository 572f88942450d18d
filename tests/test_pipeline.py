"""`chestclip run`: every stage in order, skipped when up to date, rerun from the changed one,
switched off on request, resumed after an interrupted stage; a changed CLIP retrains every head."""

import json
import shutil

import pytest

import chestclip.pipeline as pipeline
from chestclip.config import load_run_config
from chestclip.errors import ChestClipError
from chestclip.phantom import generate_phantoms
from chestclip.utils.run_layout import RunLayout

pytestmark = pytest.mark.slow

QUICK = {"n_boot": 20, "explain_limit": 4}
# stages a test of the orchestration does not need
ONLY_HEADS = [f"stages.{s}=false" for s in ("baseline", "explain", "zeroshot", "retrieve")]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "phantoms"
    generate_phantoms(path, studies=120, image_size=96, layout="kaggle", seed=2, visibility=3.0)
    return path


def tiny(*overrides):
    return load_run_config(
        "tiny", ["pretrain.epochs=2", "probe.epochs=3", "probe.batch_size=128", *overrides]
    )


@pytest.fixture(scope="module")
def full_run(source, tmp_path_factory):
    logs: list[str] = []
    run = pipeline.run_pipeline(
        tiny(), source, tmp_path_factory.mktemp("run"), logs.append, **QUICK
    )
    return run, logs


def copied(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_run_executes_every_stage_the_readme_lists(full_run):
    run, logs = full_run
    layout = RunLayout(run)
    stages = [line for line in logs if line.startswith("── ")]  # prepare also says its views
    assert stages == [f"── {stage.name}" for stage in pipeline.STAGES]
    for stage in pipeline.STAGES:
        assert json.loads(layout.stage_record(stage.name).read_text())["status"] == "done"
    for path in (
        layout.report,
        layout.model_card,
        layout.baseline("image-finetuned") / "scores.csv",
        layout.faithfulness,
        layout.zeroshot_metrics,
        layout.retrieval_index("train") / "index.json",  # predict's nearest-report drafts
    ):
        assert path.is_file(), path
    heads = json.loads(layout.metrics.read_text())["heads"]
    assert {"multimodal", "image", "multimodal_indication", "image-finetuned"} <= set(heads)


def test_run_skips_up_to_date_stages_reruns_changed_ones_and_switches_off(
    full_run, source, tmp_path
):
    run = copied(full_run[0], tmp_path)
    logs: list[str] = []
    pipeline.run_pipeline(tiny(), source, run, log=logs.append, **QUICK)
    assert logs == [f"── {stage.name}: up to date, skipped" for stage in pipeline.STAGES]
    logs.clear()
    pipeline.run_pipeline(
        tiny("probe.lr=0.003", "stages.zeroshot=false"), source, run, log=logs.append, **QUICK
    )
    skipped = [line.split()[1].rstrip(":") for line in logs if "skipped" in line]
    assert skipped == ["prepare", "pretrain", "baseline", "retrieve"]
    assert "── zeroshot: switched off (stages.zeroshot: false)" in logs
    layout = RunLayout(run)
    assert not layout.zeroshot.exists() and not layout.plot("zeroshot_auc").exists()
    assert not layout.stage_record("zeroshot").exists() and layout.report.is_file()


def test_changed_clip_config_retrains_every_head(full_run, source, tmp_path):
    run = copied(full_run[0], tmp_path)
    layout = RunLayout(run)
    before = {d.name: (d / "head.safetensors").read_bytes() for d in layout.head_dirs()}
    old_clip = layout.clip_sha256()
    shutil.copytree(layout.head("image"), layout.head("left-by-an-older-config"))
    logs: list[str] = []
    pipeline.run_pipeline(tiny("model.temperature=0.2", *ONLY_HEADS), source, run, logs.append)
    assert "── pretrain" in logs and "── probe" in logs
    assert layout.clip_sha256() != old_clip
    after = {d.name: (d / "head.safetensors").read_bytes() for d in layout.head_dirs()}
    assert set(after) == set(before)  # nothing left from the older CLIP
    for name, weights in after.items():
        assert weights != before[name], f"{name} was not retrained"
        info = json.loads((layout.head(name) / "head.json").read_text())
        assert info["fingerprint"]["clip_sha256"] == layout.clip_sha256()


def test_interrupted_stage_resumes(source, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "probe", crash)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline(tiny(*ONLY_HEADS), source, tmp_path / "run", log=lambda _: None)
    state = json.loads((tmp_path / "run/stages/probe.json").read_text())
    assert state["status"] == "started"
    monkeypatch.undo()
    logs: list[str] = []
    pipeline.run_pipeline(tiny(*ONLY_HEADS), source, tmp_path / "run", log=logs.append)
    assert logs[:2] == ["── prepare: up to date, skipped", "── pretrain: up to date, skipped"]
    assert logs[2] == "── probe"


def test_changed_pretraining_config_does_not_resume_stale_checkpoints(tmp_path):
    layout = RunLayout(tmp_path / "run")
    layout.checkpoints.mkdir(parents=True)
    layout.last_checkpoint.write_text("from another config")
    layout.stages.mkdir()
    layout.stage_record("pretrain").write_text(
        json.dumps({"fingerprint": "old", "status": "started"})
    )
    assert not pipeline.pretrain_resumable(layout, "new")
    assert not layout.checkpoints.exists()


def test_a_replaced_source_file_reruns_prepare_and_everything_after(tmp_path):
    """A truncated archive replaced by the whole one (same path) is not "up to date"."""
    source = tmp_path / "download"
    source.mkdir()
    (source / "NLMCXR_reports.tgz").write_bytes(b"half of the archive")
    before = pipeline.stage_fingerprints(tiny(), source)
    (source / "NLMCXR_reports.tgz").write_bytes(b"half of the archive, and the other half")
    after = pipeline.stage_fingerprints(tiny(), source)
    assert all(before[stage.name] != after[stage.name] for stage in pipeline.STAGES)


def test_stage_switches_are_validated():
    with pytest.raises(ChestClipError, match="report needs evaluate: switch evaluate on"):
        load_run_config("tiny", ["stages.evaluate=false"])
    with pytest.raises(ChestClipError, match=r"stages\.explainn"):
        load_run_config("tiny", ["stages.explainn=false"])
