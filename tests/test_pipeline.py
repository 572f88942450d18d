"""`chestclip run`: stages in order, skipped when up to date, rerun from the changed one, and
resumed after an interrupted stage."""

import json

import pytest

import chestclip.pipeline as pipeline
from chestclip.config import load_run_config
from chestclip.phantom import generate_phantoms

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "phantoms"
    generate_phantoms(path, studies=120, image_size=96, layout="kaggle", seed=2, visibility=3.0)
    return path


def tiny(*overrides):
    return load_run_config("tiny", ["pretrain.epochs=2", "probe.epochs=3", *overrides])


def test_run_skips_up_to_date_stages_and_reruns_changed_ones(source, tmp_path):
    logs: list[str] = []
    run = pipeline.run_pipeline(tiny(), source, tmp_path / "run", log=logs.append)
    assert (run / "report.html").is_file() and (run / "MODEL_CARD.md").is_file()
    assert all(
        json.loads((run / "stages" / f"{s}.json").read_text())["status"] == "done"
        for s in pipeline.STAGE_SECTIONS
    )
    logs.clear()
    pipeline.run_pipeline(tiny(), source, run, log=logs.append)
    assert all("skipped" in line for line in logs) and len(logs) == len(pipeline.STAGE_SECTIONS)
    logs.clear()
    pipeline.run_pipeline(tiny("probe.lr=0.003"), source, run, log=logs.append)
    skipped = [line.split()[1].rstrip(":") for line in logs if "skipped" in line]
    assert skipped == ["prepare", "pretrain"]


def test_interrupted_stage_resumes(source, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "probe", crash)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline(tiny(), source, tmp_path / "run", log=lambda _: None)
    state = json.loads((tmp_path / "run/stages/probe.json").read_text())
    assert state["status"] == "started"
    monkeypatch.undo()
    logs: list[str] = []
    pipeline.run_pipeline(tiny(), source, tmp_path / "run", log=logs.append)
    assert logs[:2] == ["── prepare: up to date, skipped", "── pretrain: up to date, skipped"]
    assert logs[2] == "── probe"


def test_changed_pretraining_config_does_not_resume_stale_checkpoints(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints/last.ckpt").write_text("from another config")
    (run / "stages").mkdir()
    (run / "stages/pretrain.json").write_text(
        json.dumps({"fingerprint": "old", "status": "started"})
    )
    assert not pipeline.pretrain_resumable(run, "new")
    assert not (run / "checkpoints").exists()


def test_a_replaced_source_file_reruns_prepare_and_everything_after(tmp_path):
    """A truncated archive replaced by the whole one (same path) is not "up to date"."""
    source = tmp_path / "download"
    source.mkdir()
    (source / "NLMCXR_reports.tgz").write_bytes(b"half of the archive")
    before = pipeline.stage_fingerprints(tiny(), source)
    (source / "NLMCXR_reports.tgz").write_bytes(b"half of the archive, and the other half")
    after = pipeline.stage_fingerprints(tiny(), source)
    assert all(before[stage] != after[stage] for stage in pipeline.STAGE_SECTIONS)
