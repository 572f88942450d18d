"""Sweeps end to end on the tiny phantoms: the 2×2 grid through the CLI, the test split read for
the chosen trial only, resume after an interruption, failed trials, GPU-pinned workers."""

import itertools
import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from filelock import FileLock

from chestclip.cli import cli
from chestclip.config import load_run_config, save_run_config
from chestclip.errors import ChestClipError
from chestclip.sweep import load_sweep, run_sweep
from chestclip.sweep import run as sweep_run
from chestclip.sweep.trial import launch, worker_gpus

pytestmark = pytest.mark.slow

# a CPU-sized trial: one short epoch of pretraining, two of each head (a few seconds)
FAST = {
    "pretrain.epochs": 1,
    "pretrain.limit_train_batches": 4,
    "pretrain.log_every_n_steps": 1,
    "probe.epochs": 2,
    "probe.batch_size": 128,
}
GRID = {"pretrain.lr": [1.0e-3, 3.0e-3], "pretrain.optimizer": ["adamw", "adam"]}


def sweep_file(directory: Path, space: dict, **fields) -> Path:
    path = directory / "sweep.yaml"
    spec = {"base": "tiny", "head": "image", "fixed": FAST, "space": space, **fields}
    path.write_text(yaml.safe_dump(spec))
    return path


def recording(calls: list, function):
    """``function`` that notes its first argument (a run directory) in ``calls``."""

    def wrapper(run, *args, **kwargs):
        calls.append(Path(run))
        return function(run, *args, **kwargs)

    return wrapper


@pytest.fixture(scope="module")
def grid_sweep(sweep_data, tmp_path_factory):
    """The 2×2 grid through `chestclip sweep`, every test-split evaluation recorded."""
    root = tmp_path_factory.mktemp("sweep")
    evaluated: list[Path] = []
    args = ["sweep", "--config", str(sweep_file(root, GRID)), "--data", str(sweep_data)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep_run, "evaluate", recording(evaluated, sweep_run.evaluate))
        result = CliRunner().invoke(cli, [*args, "--out", str(root / "out"), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    return root / "out", result.output, evaluated


def test_grid_sweep_end_to_end(grid_sweep):
    out, output, _ = grid_sweep
    board = pd.read_csv(out / "leaderboard.csv")
    assert len(board) == 4 and set(board["state"]) == {"complete"}
    combos = set(zip(board["pretrain.lr"], board["pretrain.optimizer"], strict=True))
    assert combos == set(itertools.product(*GRID.values()))
    assert (board["objective"] == board["probe_val_auc_image"]).all()  # head: image
    assert board[["probe_val_auc_multimodal", "clip_val_loss", "seconds"]].notna().all().all()
    chosen = board[board["chosen"]]
    assert len(chosen) == 1
    best = chosen.iloc[0]
    assert best["objective"] == board["objective"].max()
    assert int(best["trial"]) == board.loc[board["objective"] == best["objective"], "trial"].min()
    # each trial is an ordinary run directory with its config and record
    for _, row in board.iterrows():
        run = out / row["run"]
        record = json.loads((run / "trial.json").read_text())
        assert (
            record["state"] == "complete" and record["params"]["pretrain.lr"] == row["pretrain.lr"]
        )
        assert load_run_config(run / "config.yaml").pretrain.optimizer == row["pretrain.optimizer"]
        assert (run / "heads/image/head.json").is_file()
    best_config = load_run_config(out / "best.yaml")
    assert best_config == load_run_config(out / best["run"] / "config.yaml")
    assert (best_config.pretrain.lr, best_config.pretrain.optimizer) == (
        best["pretrain.lr"],
        best["pretrain.optimizer"],
    )
    assert best_config.pretrain.epochs == 1 and best_config.prepare.image_size == 64  # the data's
    assert (out / "plots/metric_vs_params.png").stat().st_size > 0
    assert f"chosen on validation: trial {int(best['trial'])}" in output
    assert f"test split, read for trial {int(best['trial'])} only" in output


def test_test_split_read_for_the_chosen_trial_only(grid_sweep):
    out, _, evaluated = grid_sweep
    board = pd.read_csv(out / "leaderboard.csv")
    best_run = out / board.loc[board["chosen"], "run"].item()
    assert evaluated == [best_run]
    assert board["test_split_read"].tolist() == board["chosen"].tolist()
    for run in (out / "trials").iterdir():
        read_test = any((run / "features").glob("*test*")), (run / "eval/metrics.json").is_file()
        assert read_test == ((True, True) if run == best_run else (False, False))
    report = (best_run / "report.html").read_text()
    assert 'href="../../leaderboard.csv"' in report and "read for this trial only" in report


def test_rerun_of_a_finished_sweep_trains_and_reads_nothing(grid_sweep, sweep_data, monkeypatch):
    out, _, _ = grid_sweep
    before = pd.read_csv(out / "leaderboard.csv")

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished sweep ran a trial or read the test split again")

    monkeypatch.setattr(sweep_run, "run_trial", forbidden)
    monkeypatch.setattr(sweep_run, "evaluate", forbidden)
    result = run_sweep(load_sweep(out.parent / "sweep.yaml"), sweep_data, out)
    pd.testing.assert_frame_equal(pd.read_csv(out / "leaderboard.csv"), before)
    assert result.best_trial == int(before.loc[before["chosen"], "trial"].item())


def test_rerun_with_another_sweep_file_is_refused(grid_sweep, sweep_data, tmp_path):
    out, _, _ = grid_sweep
    other = load_sweep(sweep_file(tmp_path, {"pretrain.lr": [1.0e-3, 2.0e-3]}))
    with pytest.raises(ChestClipError, match="holds a sweep of another sweep file"):
        run_sweep(other, sweep_data, out)


def test_interrupted_sweep_resumes_without_retraining(sweep_data, tmp_path, monkeypatch):
    sweep = load_sweep(sweep_file(tmp_path, {"pretrain.lr": [1.0e-3, 2.0e-3, 3.0e-3]}))
    out, calls = tmp_path / "out", []
    real_trial = sweep_run.run_trial

    def interrupted_at_second_trial(run, *args):
        calls.append(run)
        if len(calls) == 2:
            (run / "checkpoints").mkdir(parents=True)  # what a killed pretraining leaves
            raise KeyboardInterrupt
        return real_trial(run, *args)

    monkeypatch.setattr(sweep_run, "run_trial", interrupted_at_second_trial)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, sweep_data, out, n_boot=20)
    assert len(pd.read_csv(out / "leaderboard.csv")) == 1  # written after every trial
    first_model = out / "trials/0000/clip/model.safetensors"
    stamp = first_model.stat().st_mtime_ns

    calls.clear()
    monkeypatch.setattr(sweep_run, "run_trial", recording(calls, real_trial))
    result = run_sweep(sweep, sweep_data, out, n_boot=20)
    assert [run.name for run in calls] == ["0002", "0003"]  # the last point, then the retry
    assert first_model.stat().st_mtime_ns == stamp  # the finished trial was not retrained
    assert not (out / "trials/0001").exists()  # the partial run was removed
    board = result.leaderboard.set_index("trial")
    assert board["state"].to_dict() == {
        0: "complete", 1: "interrupted", 2: "complete", 3: "complete"
    }  # fmt: skip
    assert board.loc[1, "error"] == "interrupted; retried as trial 3"
    assert board.loc[3, "pretrain.lr"] == board.loc[1, "pretrain.lr"] == 2.0e-3
    assert result.best_trial in (0, 2, 3) and board["test_split_read"].sum() == 1


def test_failed_trial_is_recorded_and_the_sweep_goes_on(sweep_data, tmp_path):
    missing = str(tmp_path / "missing-encoder")
    sweep = load_sweep(sweep_file(tmp_path, {"model.image_encoder": ["tiny-resnet", missing]}))
    result = run_sweep(sweep, sweep_data, tmp_path / "out", n_boot=20)
    board = result.leaderboard.set_index("trial")
    assert board["state"].to_dict() == {0: "complete", 1: "failed"}
    assert "missing-encoder" in board.loc[1, "error"] and "\n" not in board.loc[1, "error"]
    assert pd.isna(board.loc[1, "objective"]) and result.best_trial == 0
    record = json.loads((tmp_path / "out/trials/0001/trial.json").read_text())
    assert record["state"] == "failed" and "missing-encoder" in record["error"]


def test_sweep_without_a_finished_trial_says_so(sweep_data, tmp_path):
    space = {"model.image_encoder": [str(tmp_path / "missing-a"), str(tmp_path / "missing-b")]}
    with pytest.raises(ChestClipError, match="no trial completed; see the errors in leaderboard"):
        run_sweep(load_sweep(sweep_file(tmp_path, space)), sweep_data, tmp_path / "out")
    board = pd.read_csv(tmp_path / "out/leaderboard.csv")
    assert board["state"].tolist() == ["failed", "failed"]


@pytest.mark.parametrize("search", ["random", "tpe"])
def test_random_and_tpe_search_spend_their_budget(sweep_data, tmp_path, monkeypatch, search):
    """The search loop alone: each trial's training replaced by a score that is best (lowest)
    at lr 1e-3, selection on a minimised metric."""

    def scored_trial(run, data_dir, config):
        save_run_config(config, run / "config.yaml")
        loss = abs(math.log10(config.pretrain.lr) + 3)
        return {"probe_val_auc_image": 0.5, "clip_val_loss": loss}

    monkeypatch.setattr(sweep_run, "run_trial", scored_trial)
    monkeypatch.setattr(sweep_run, "evaluate", lambda run, *args, **kwargs: {})
    monkeypatch.setattr(sweep_run, "write_report", lambda run, leaderboard: run / "report.html")
    space = {
        "pretrain.lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
        "probe.batch_size": {"low": 16, "high": 64},
    }
    spec = {"search": search, "trials": 6, "metric": "clip_val_loss", "seed": 1}
    result = run_sweep(
        load_sweep(sweep_file(tmp_path, space, **spec)), sweep_data, tmp_path / "out"
    )
    board = result.leaderboard
    assert board["state"].tolist() == ["complete"] * 6
    assert board["pretrain.lr"].between(1.0e-4, 1.0e-2).all()
    assert board["probe.batch_size"].between(16, 64).all()
    assert (board["probe.batch_size"] % 1 == 0).all()
    assert result.best_trial == board.loc[board["objective"].idxmin(), "trial"]
    best = load_run_config(tmp_path / "out/best.yaml")
    assert best.pretrain.lr == board.set_index("trial").loc[result.best_trial, "pretrain.lr"]


def test_parallel_worker_sees_only_its_gpu(monkeypatch):
    """A trial launched on a GPU runs in a fresh spawned process that sees that GPU alone."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert launch("1", os.getenv, "CUDA_VISIBLE_DEVICES").result(timeout=300) == "1"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"  # this process is left as it was


@pytest.mark.parametrize(("visible", "count"), [("", 0), ("3", 1)])
def test_more_jobs_than_gpus_is_refused(monkeypatch, visible, count):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert worker_gpus(1) == []  # one trial at a time: in this process, no pinning
    with pytest.raises(ChestClipError, match=f"--jobs 2: {count} GPU"):
        worker_gpus(2)


def test_jobs_take_the_visible_gpus_in_order(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,7")
    assert worker_gpus(2) == ["2", "5"]


def test_one_sweep_at_a_time_per_directory(sweep_data, tmp_path):
    sweep = load_sweep(sweep_file(tmp_path, {"pretrain.lr": [1.0e-3]}))
    (tmp_path / "out").mkdir()
    with (
        FileLock(tmp_path / "out/sweep.lock"),
        pytest.raises(ChestClipError, match="another sweep is running there"),
    ):
        run_sweep(sweep, sweep_data, tmp_path / "out")
