"""`chestclip run` with 2 CPU processes (gloo), end to end: started as one command that
Lightning's DDP launcher re-executes, and started by torchrun. The training stages (pretrain, the
fine-tuned baseline) run on both ranks; every other stage runs once, on rank 0, which alone
prints and writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

import chestclip
from chestclip.phantom import generate_phantoms
from chestclip.pipeline import STAGES
from chestclip.utils.run_layout import RunLayout

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available(), reason="needs torch.distributed"),
]

SMALL = ["--config", "tiny", "--bootstrap", "10", "--explain-limit", "2"]
SMALL += [f"--set={key}" for key in ("pretrain.epochs=1", "probe.epochs=2", "probe.batch_size=128")]
DDP = [f"--set={key}" for key in ("pretrain.accelerator=cpu", "pretrain.devices=2")]
DDP += ["--set=pretrain.strategy=ddp"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "phantoms"
    generate_phantoms(path, studies=80, image_size=64, layout="kaggle", seed=3, visibility=3.0)
    return path


def run_command(launcher: list[str], source: Path, out: Path) -> subprocess.CompletedProcess:
    """``chestclip run`` through ``launcher``, on this checkout's sources, offline."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    sources = str(Path(chestclip.__file__).parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [sources, env.get("PYTHONPATH")]))
    command = [*launcher, "-m", "chestclip", "run", "--source", str(source), "--run", str(out)]
    return subprocess.run(
        [*command, *SMALL, *DDP], env=env, capture_output=True, text=True, timeout=600
    )


def assert_every_stage_ran_once(result: subprocess.CompletedProcess, out: Path) -> None:
    assert result.returncode == 0, result.stderr[-4000:]
    printed = result.stdout.splitlines()
    layout = RunLayout(out)
    for stage in STAGES:
        assert printed.count(f"── {stage.name}") == 1, (stage.name, printed)  # rank 0 only
        record = json.loads(layout.stage_record(stage.name).read_text())
        assert record["status"] == "done", stage.name
    assert printed[-1] == f"→ {layout.report}" and layout.report.is_file()
    assert layout.retrieval_index("train").is_dir() and layout.head("image").is_dir()
    assert (layout.baseline("image-finetuned") / "scores.csv").is_file()
    assert not list(out.rglob(".*.tmp")), "a half-written output was left behind"


def test_run_with_two_ddp_processes_from_one_command(source, tmp_path):
    result = run_command([sys.executable], source, tmp_path / "run")
    assert_every_stage_ran_once(result, tmp_path / "run")
    # Lightning spawned a second rank for each training stage (pretrain, baseline), never more
    assert result.stderr.count("GLOBAL_RANK: 1, MEMBER: 2/2") == 2


def test_run_launched_by_torchrun(source, tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    result = run_command([*torchrun, "--nproc-per-node=2"], source, tmp_path / "run")
    assert_every_stage_ran_once(result, tmp_path / "run")
