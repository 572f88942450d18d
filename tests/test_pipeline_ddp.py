"""`chestclip run` with 2 CPU processes (gloo), end to end: started as one command that
Lightning's DDP launcher re-executes, and started by torchrun. The training stages (pretrain, the
fine-tuned baseline) run on both ranks; every other stage runs once, on rank 0, which alone
prints and writes. Then the real download's path (`chestclip phantom --reports`: the real
reports, phantom images, no view table) with 1 and with 2 processes, whose results must agree
within their bootstrap CIs."""

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import torch.distributed as dist
from click.testing import CliRunner

import chestclip
from chestclip.cli import cli
from chestclip.data.prepare import describe_views
from chestclip.phantom import generate_phantoms
from chestclip.phantom.real_reports import VIEWS_FILE
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


def run_command(
    launcher: list[str], source: Path, out: Path, options: tuple[str, ...] = (*SMALL, *DDP)
) -> subprocess.CompletedProcess:
    """``chestclip run ... *options`` through ``launcher``, on this checkout's sources, offline."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    sources = str(Path(chestclip.__file__).parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [sources, env.get("PYTHONPATH")]))
    # --run-dir: torchrun's own parser would take --run for an abbreviation of its --run-path
    command = [*launcher, "-m", "chestclip", "run", "--source", str(source), "--run-dir", str(out)]
    return subprocess.run(
        [*command, *options], env=env, capture_output=True, text=True, timeout=600
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


# The real download's path: enough training for the heads reading text to learn (the image head
# stays near chance: few of the real reports' terms draw a lesion), 200 bootstrap resamples.
REAL = ["--config", "tiny", "--bootstrap", "200", "--explain-limit", "4"]
REAL += [f"--set={key}" for key in ("pretrain.epochs=5", "probe.epochs=20")]
VIEW_CHECK = re.compile(r"views inferred: (\d+); accuracy against (.+): [\d.]+% \((\d+) of (\d+)\)")
COMPARED_HEADS = ("image", "multimodal")


def inferred_view_accuracy(result: subprocess.CompletedProcess, fixture: Path) -> float:
    """The accuracy of the inferred views that ``chestclip run`` printed, checked to be every
    prepared image's, against the fixture's phantom truth."""
    printed = [VIEW_CHECK.fullmatch(line) for line in result.stdout.splitlines()]
    (match,) = [m for m in printed if m]
    inferred, truth, correct, checked = match.groups()
    assert Path(truth).resolve() == (fixture / VIEWS_FILE).resolve()
    assert int(inferred) == int(checked)
    return int(correct) / int(checked)


@pytest.fixture(scope="module")
def one_process_run(real_reports_fixture, tmp_path_factory):
    """``chestclip run`` on the real-reports fixture with 1 process: its result and folder."""
    out = tmp_path_factory.mktemp("real-download") / "run"
    return run_command([sys.executable], real_reports_fixture, out, tuple(REAL)), out


def roc_auc_on_test(run: Path, head: str) -> dict[str, float]:
    """``head``'s test ROC-AUC per image with its 95 % bootstrap CI."""
    metrics = json.loads(RunLayout(run).metrics.read_text())
    return metrics["heads"][head]["levels"]["image"]["metrics"]["roc_auc"]


@pytest.mark.real_data
def test_real_download_runs_with_views_inferred(real_reports_fixture, one_process_run, tmp_path):
    result, out = one_process_run
    assert_every_stage_ran_once(result, out)
    accuracy = inferred_view_accuracy(result, real_reports_fixture)
    print(f"views inferred on the real-reports fixture, accuracy {accuracy:.1%}")
    assert accuracy >= 0.97
    layout = RunLayout(out)
    images = pd.read_csv(layout.prepared / "images.csv", dtype=str).set_index("image_id")
    assert set(images["projection_source"]) == {"inferred"}  # no view table in the download
    # where the views came from, printed by `run` and stated in the report
    views = describe_views(json.loads((layout.prepared / "summary.json").read_text()))
    assert views.endswith(f"(from {len(images)} inferred)") and views in result.stdout
    assert views in layout.report.read_text()
    # explained: test images inferred frontal, and drawn frontal
    explained = pd.read_csv(layout.explain / "roi.csv", dtype=str)["image_id"].unique()
    assert len(explained) == 4
    assert json.loads(layout.faithfulness.read_text())["views"] == "frontal"
    assert set(images.loc[explained, "projection"]) == {"Frontal"}
    assert set(images.loc[explained, "split"]) == {"test"}
    truth = pd.read_csv(real_reports_fixture / VIEWS_FILE, dtype=str).set_index("image_id")
    assert set(truth.loc[explained, "projection"]) == {"Frontal"}
    # and `predict` answers for a film of the download, with nearest-report drafts
    with tarfile.open(real_reports_fixture / "NLMCXR_png.tgz") as tar:
        tar.extract(images.loc[explained[0], "file"], tmp_path, filter="data")
    film = tmp_path / images.loc[explained[0], "file"]
    answer = CliRunner().invoke(cli, ["predict", "--run", str(out), str(film), "--json"])
    assert answer.exit_code == 0, answer.output
    (prediction,) = [json.loads(line) for line in answer.stdout.splitlines()]
    assert prediction["decisions"]["image"] in ("normal", "diseased") and prediction["drafts"]


@pytest.mark.real_data
def test_real_download_with_two_ddp_processes_agrees_with_one(
    real_reports_fixture, one_process_run, tmp_path
):
    one, one_out = one_process_run
    assert one.returncode == 0, one.stderr[-4000:]
    two = run_command([sys.executable], real_reports_fixture, tmp_path / "run", (*REAL, *DDP))
    assert_every_stage_ran_once(two, tmp_path / "run")
    assert two.stderr.count("GLOBAL_RANK: 1, MEMBER: 2/2") == 2
    assert inferred_view_accuracy(two, real_reports_fixture) >= 0.97
    for head in COMPARED_HEADS:
        a, b = (roc_auc_on_test(out, head) for out in (one_out, tmp_path / "run"))
        print(f"{head} head, test ROC-AUC: 1 process {a}, 2 processes {b}")
        assert a["ci_low"] <= b["value"] <= a["ci_high"], (head, a, b)
        assert b["ci_low"] <= a["value"] <= b["ci_high"], (head, a, b)
