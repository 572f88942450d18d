"""``chestclip sweep``: a hyperparameter search whose trials are ordinary runs, chosen on the
validation split only; the test split is then read once, for the chosen trial.

Writes into DIR: ``optuna.db`` (the Optuna study: rerunning the same command resumes it),
``sweep.yaml`` (the resolved sweep file), ``trials/NNNN/`` (a run directory per trial, with its
``trial.json``), ``leaderboard.csv``, ``plots/metric_vs_params.png``, ``best.yaml`` (the chosen
run config, for ``chestclip run --config``) — and the chosen run's ``eval/`` and ``report.html``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from filelock import FileLock, Timeout
from optuna.trial import TrialState

from chestclip.config import PrepareConfig, load_run_config, save_run_config
from chestclip.data import PreparedData
from chestclip.errors import ChestClipError
from chestclip.evaluation.evaluate import evaluate
from chestclip.evaluation.report import write_report
from chestclip.pipeline import join_spawned_call
from chestclip.sweep.leaderboard import (
    choose_best,
    leaderboard,
    plot_metric_vs_params,
    trial_dir,
    trial_state,
    write_leaderboard,
)
from chestclip.sweep.space import Sweep, make_sampler, suggest
from chestclip.sweep.trial import launch, run_trial, worker_gpus
from chestclip.utils.distributed import external_cluster
from chestclip.utils.io import atomic_write_json, atomic_write_text
from chestclip.utils.run_layout import RunLayout

STUDY = "chestclip-sweep"
LEADERBOARD, BEST_CONFIG = "leaderboard.csv", "best.yaml"


@dataclass(frozen=True)
class SweepResult:
    out: Path
    objective: str  # the validation metric trials were ranked by
    leaderboard: pd.DataFrame
    best_trial: int
    best_run: Path
    test_metrics: dict[str, Any]
    report: Path
    seconds: float


@dataclass(frozen=True)
class Started:
    """A trial handed to a worker (``gpu`` None: this process)."""

    trial: optuna.Trial
    params: dict[str, Any]
    gpu: str | None
    start: float


def one_line(err: BaseException) -> str:
    """An error as the leaderboard shows it: its type (unless ours) and first line."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else ""
    return text if isinstance(err, ChestClipError) else f"{type(err).__name__}: {text}"


def open_study(
    sweep: Sweep, data_dir: Path, out: Path, storage: optuna.storages.BaseStorage
) -> optuna.Study:
    """The study in ``storage``, created on the first run; a rerun must name the same sweep,
    base config and dataset, or its trials would not be comparable."""
    study = optuna.create_study(
        storage=storage,
        study_name=STUDY,
        direction=sweep.spec.direction,
        sampler=make_sampler(sweep.spec),
        load_if_exists=True,
    )
    identity = {
        "sweep": sweep.spec.model_dump(mode="json"),
        "base": sweep.base.model_dump(mode="json"),
        "data": str(data_dir.resolve()),
    }
    recorded = study.user_attrs.get("identity")
    if recorded is None:
        study.set_user_attr("identity", identity)
        atomic_write_text(out / "sweep.yaml", yaml.safe_dump(identity["sweep"], sort_keys=False))
    elif recorded != identity:
        raise ChestClipError(
            f"{out}: holds a sweep of another sweep file, base config or dataset; rerun it with "
            "the same ones to resume, or choose a new --out"
        )
    return study


def requeue_interrupted(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    out: Path,
    log: Callable[[str], None],
) -> None:
    """Trials a killed sweep left running (the lock says no sweep is alive): marked interrupted,
    their partial run directories removed (derived data) and their parameters queued again."""
    study_id = storage.get_study_id_from_name(STUDY)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            # through the storage: study.tell would run sampler hooks meant for a live trial
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            shutil.rmtree(trial_dir(out, trial.number), ignore_errors=True)
        elif trial_state(trial) != "interrupted":
            continue
        if trial.number not in retried:
            # a queued grid point keeps its values even if the kill came before they were drawn
            params = trial.system_attrs.get("fixed_params", trial.params)
            study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
            log(f"trial {trial.number} was interrupted: its parameters are queued again")


def counted(study: optuna.Study) -> int:
    """Trials that use up the budget: complete or failed (an interrupted one is retried)."""
    return sum(trial_state(t) in ("complete", "failed") for t in study.get_trials(deepcopy=False))


def run_trials(
    study: optuna.Study,
    sweep: Sweep,
    data: PreparedData,
    out: Path,
    gpus: list[str],
    log: Callable[[str], None],
    write_board: Callable[[], None],
) -> None:
    """Ask, run and tell until the budget is spent: one trial at a time in this process, or one
    per GPU, each in its own process."""
    prepare = PrepareConfig.model_validate(data.summary["config"])
    free: list[str | None] = list(gpus) or [None]
    running: dict[Future, Started] = {}
    while True:
        while free and counted(study) + len(running) < sweep.spec.budget:
            trial, gpu, start = study.ask(), free.pop(0), time.perf_counter()
            params: dict[str, Any] = {}
            try:
                params = suggest(trial, sweep.spec.space)
                config = sweep.config(params, prepare)
            except ChestClipError as err:
                future: Future = Future()
                future.set_exception(err)
            else:
                log(f"── trial {trial.number}: {shown(params)}" + (f" (GPU {gpu})" if gpu else ""))
                future = launch(gpu, run_trial, trial_dir(out, trial.number), data.root, config)
            running[future] = Started(trial, params, gpu, start)
        if not running:
            return
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            started = running.pop(future)
            free.append(started.gpu)
            tell(study, started, future, sweep, out, log)
            write_board()


def shown(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in params.items())


def tell(
    study: optuna.Study,
    started: Started,
    future: Future,
    sweep: Sweep,
    out: Path,
    log: Callable[[str], None],
) -> None:
    """Record a finished trial in the study and in its run directory's trial.json."""
    trial, seconds = started.trial, time.perf_counter() - started.start
    error, metrics = future.exception(), {}
    if error is None:
        metrics = future.result()
        if not math.isfinite(metrics[sweep.spec.objective]):
            error = ChestClipError(f"validation {sweep.spec.objective} is not a number")
    message = one_line(error) if error is not None else None
    trial.set_user_attr("seconds", round(seconds, 1))
    trial.set_user_attr("metrics", metrics)
    trial.set_user_attr("gpu", started.gpu)
    if message is None:
        value = metrics[sweep.spec.objective]
        study.tell(trial, value)
        log(f"   trial {trial.number}: {sweep.spec.objective} {value:.4f} in {seconds:.0f} s")
    else:
        trial.set_user_attr("error", message)
        study.tell(trial, state=TrialState.FAIL)
        log(f"   trial {trial.number} failed: {message}")
    record = {
        "trial": trial.number,
        "params": started.params,
        "metrics": metrics,
        "seconds": seconds,
        "state": "complete" if message is None else "failed",
        "error": message,
    }
    atomic_write_json(trial_dir(out, trial.number) / "trial.json", record)


def run_sweep(
    sweep: Sweep,
    data_dir: str | Path,
    out: str | Path,
    jobs: int = 1,
    n_boot: int = 1000,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Run (or resume) the sweep into ``out``; choose on validation; evaluate the test split for
    the chosen trial only (once: a rerun of a finished sweep reads it no more)."""
    join_spawned_call()  # a DDP child of a trial's pre-training: only that, then exit
    if external_cluster() is not None:
        raise ChestClipError(
            "chestclip sweep runs as one process (torchrun/srun would run every trial in each): "
            "set pretrain.devices for DDP trials, or --jobs for one trial per GPU"
        )
    out, start = Path(out), time.perf_counter()
    data = PreparedData(data_dir)
    gpus = worker_gpus(jobs)
    if gpus and sweep.base.pretrain.devices not in ("auto", 1):
        raise ChestClipError(
            f"{sweep.source}: --jobs {jobs} runs each trial on one GPU; "
            f"pretrain.devices is {sweep.base.pretrain.devices!r}"
        )
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / "sweep.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ChestClipError(f"{out}: another sweep is running there (sweep.lock)") from None
    try:
        # SQLite commits each change in a transaction: a killed sweep leaves the study consistent
        storage = optuna.storages.RDBStorage(f"sqlite:///{(out / 'optuna.db').resolve()}")
        study = open_study(sweep, data.root, out, storage)
        requeue_interrupted(study, storage, out, log)
        for params in sweep.spec.grid() if sweep.spec.search == "grid" else ():
            study.enqueue_trial(params, skip_if_exists=True)

        def write_board(chosen: int | None = None, test_read: int | None = None) -> pd.DataFrame:
            frame = leaderboard(study.get_trials(), sweep.spec, out, chosen, test_read)
            write_leaderboard(frame, out / LEADERBOARD)
            return frame

        run_trials(study, sweep, data, out, gpus, log, write_board)
        best = choose_best(write_board(), sweep.spec.direction)
        if best is None:
            raise ChestClipError(f"{out}: no trial completed; see the errors in {LEADERBOARD}")
        best_run = trial_dir(out, best)
        config = load_run_config(RunLayout(best_run).config)
        save_run_config(config, out / BEST_CONFIG)
        plot_metric_vs_params(
            write_board(chosen=best), sweep.spec, RunLayout(out).plot("metric_vs_params")
        )
        metrics_path = RunLayout(best_run).metrics
        if study.user_attrs.get("test_read") == best and metrics_path.is_file():
            test_metrics = json.loads(metrics_path.read_text())
        else:
            log(f"── test split, read for the chosen trial {best} only")
            test_metrics = evaluate(best_run, data.root, config, n_boot=n_boot)
            study.set_user_attr("test_read", best)
        frame = write_board(chosen=best, test_read=best)
        report = write_report(best_run, leaderboard=out / LEADERBOARD)
    finally:
        lock.release()
    seconds = time.perf_counter() - start
    return SweepResult(
        out, sweep.spec.objective, frame, best, best_run, test_metrics, report, seconds
    )
