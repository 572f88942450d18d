"""The whole study in one call: ``chestclip run`` on a user's data with a config, and
``chestclip demo``, the same on phantoms (offline, CPU-sized).

``run`` executes every stage the README lists — prepare → pretrain → probe (with the leakage
ablation heads) → the fine-tuned image baseline → evaluate → explain → zero-shot → retrieval →
report and model card — each switchable off (``stages:`` in the config). Each records in
``RUN/stages/<stage>.json`` a fingerprint of its config sections, its options and of the stages
it reads: an unchanged stage is skipped, a changed one reruns with every stage that reads it, and
a killed pre-training resumes from its last checkpoint. Under DDP the training stages (pretrain,
baseline) run on every rank and every other stage once, on rank 0
(``chestclip.utils.distributed``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from chestclip.config import RunConfig, load_run_config
from chestclip.data import PrepareSummary, prepare_dataset
from chestclip.data.fingerprint import source_fingerprint
from chestclip.data.prepare import describe_views
from chestclip.errors import ChestClipError
from chestclip.evaluation.evaluate import evaluate
from chestclip.evaluation.report import write_report
from chestclip.explain.stage import explain_split
from chestclip.inference.model_card import write_model_card
from chestclip.phantom import generate_phantoms
from chestclip.phantom.real_reports import check_inferred_views
from chestclip.retrieval.stage import run_retrieval, run_zero_shot
from chestclip.training.findings_probe import probe_findings
from chestclip.training.finetune import finetune_image_baseline
from chestclip.training.pretrain import pretrain
from chestclip.training.probe import probe
from chestclip.utils.device import resolve_device
from chestclip.utils.distributed import (
    check_launch,
    is_leader,
    release,
    share,
    spawned_call,
)
from chestclip.utils.io import atomic_write_json
from chestclip.utils.run_layout import RunLayout

# Lesions drawn clearly enough that a tiny model on 64-px images learns them within a minute of
# CPU training: a learnable task, not a trivial one (the image-only AUC stays well below 1).
DEMO_VISIBILITY = 3.0
EXPLAINED_HEAD = "image"  # what in the image drove the score (the multimodal head reads findings)


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]  # the config sections it reads
    reads: tuple[str, ...]  # the stages whose outputs it reads
    on_every_rank: bool = False  # a DDP training stage: every rank trains, rank 0 writes


STAGES = (
    Stage("prepare", ("seed", "prepare"), ()),
    Stage("pretrain", ("model", "pretrain"), ("prepare",), on_every_rank=True),
    Stage("probe", ("probe",), ("pretrain",)),
    Stage("baseline", ("model", "pretrain"), ("prepare",), on_every_rank=True),
    Stage("evaluate", (), ("probe", "baseline")),
    Stage("explain", (), ("probe",)),
    Stage("zeroshot", (), ("pretrain",)),
    Stage("retrieve", (), ("pretrain",)),
    Stage("report", (), ("evaluate", "explain", "zeroshot", "retrieve")),
)


@dataclass(frozen=True)
class RunOptions:
    """Settings of ``chestclip run`` outside the config: the first two change results (and are
    fingerprinted), the device does not."""

    n_boot: int = 1000
    explain_limit: int | None = None
    device: str | torch.device | None = None

    def of(self, stage: str) -> dict[str, Any]:
        return {
            "evaluate": {"bootstrap": self.n_boot},
            "zeroshot": {"bootstrap": self.n_boot},
            "explain": {"limit": self.explain_limit, "head": EXPLAINED_HEAD},
        }.get(stage, {})


def enabled(config: RunConfig, stage: str) -> bool:
    return stage == "prepare" or getattr(config.stages, stage)


def stage_fingerprints(
    config: RunConfig, source: Path, options: RunOptions = RunOptions()
) -> dict[str, str]:
    """A hash per stage of its config sections, its options and the fingerprints of the stages
    it reads (for ``prepare``, the source's files: ``source_fingerprint``): a stage reruns when
    it or anything it reads changed.
    A switched-off stage has one fixed fingerprint, so switching it on reruns its readers."""
    dumped = config.model_dump(mode="json")
    fingerprints: dict[str, str] = {}
    for stage in STAGES:
        payload: dict[str, Any] = {"enabled": False}
        if enabled(config, stage.name):
            payload = {
                "sections": {s: dumped[s] for s in stage.sections},
                "options": options.of(stage.name),
                "reads": {r: fingerprints[r] for r in stage.reads}
                or {"source": source_fingerprint(source)},
            }
        text = json.dumps(payload, sort_keys=True)
        fingerprints[stage.name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return fingerprints


def stage_actions(
    config: RunConfig,
    source: Path,
    layout: RunLayout,
    options: RunOptions,
    log: Callable[[str], None] = print,
) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """What each stage does, given rank 0's decision (``resume`` for pretrain); ``log`` prints
    what a stage found that the user must see."""
    run, prepared = layout.root, layout.prepared
    device = resolve_device(options.device)
    precision, n_boot = config.pretrain.precision, options.n_boot

    def fresh_heads(decision: dict[str, Any]) -> Any:
        shutil.rmtree(layout.heads, ignore_errors=True)  # no head of an older CLIP survives
        heads = probe(run, prepared, config, device=device)
        if config.probe.findings:  # multi-label heads, when the prepared data has findings
            heads += probe_findings(run, prepared, config, device=device)
        return heads

    return {
        "prepare": lambda d: prepare_and_describe(source, prepared, config, log),
        "pretrain": lambda d: pretrain(prepared, run, config, resume=d["resume"]),
        "probe": fresh_heads,
        "baseline": lambda d: finetune_image_baseline(prepared, run, config),
        "evaluate": lambda d: evaluate(run, prepared, config, n_boot=n_boot, device=device),
        "explain": lambda d: explain_split(
            run, prepared, "test", options.explain_limit, head=EXPLAINED_HEAD, device=device
        ),
        "zeroshot": lambda d: run_zero_shot(
            run, prepared, n_boot=n_boot, seed=config.seed, device=device, precision=precision
        ),
        "retrieve": lambda d: run_retrieval(run, prepared, device=device, precision=precision),
        "report": lambda d: (write_report(run), write_model_card(run)),
    }


def prepare_and_describe(
    source: Path, prepared: Path, config: RunConfig, log: Callable[[str], None]
) -> PrepareSummary:
    """``prepare``, then where the views came from, and, on a phantom fixture of the real
    download, how many of the inferred views are right (``check_inferred_views``)."""
    summary = prepare_dataset(source, prepared, config.prepare)
    log(describe_views(summary.counts))
    view_check = check_inferred_views(prepared)
    if view_check:
        log(view_check.describe())
    return summary


def join_spawned_call() -> None:
    """In a DDP child that Lightning's launcher re-executed this command as: make the one
    training call that spawned it, then exit — it never runs, or writes, any other stage."""
    call = spawned_call()
    if call is None:
        return
    config = RunConfig.model_validate(call["config"])
    if call["stage"] == "pretrain":
        pretrain(call["data"], call["run"], config, resume=call["resume"])
    elif call["stage"] == "baseline":
        finetune_image_baseline(call["data"], call["run"], config)
    else:
        raise ChestClipError(f"DDP child started for an unknown call {call['stage']!r}")
    raise SystemExit(0)


def run_pipeline(
    config: RunConfig,
    source: str | Path,
    out: str | Path,
    log: Callable[[str], None] = print,
    n_boot: int = 1000,
    explain_limit: int | None = None,
    device: str | torch.device | None = None,
) -> Path:
    """Every stage in order into ``out``, each skipped when its recorded fingerprint matches.
    ``n_boot``: bootstrap resamples of evaluate and zero-shot; ``explain_limit``: at most this
    many test images explained; ``device``: where stages after pre-training run (default: CUDA
    when available; pre-training follows ``pretrain.accelerator``/``devices``)."""
    join_spawned_call()
    check_launch()
    source, layout = Path(source), RunLayout(out)
    options = RunOptions(n_boot, explain_limit, device)
    leader = is_leader()
    say = log if leader else (lambda _: None)
    fingerprints = stage_fingerprints(config, source, options)
    actions = stage_actions(config, source, layout, options, say)
    try:
        for stage in STAGES:
            fingerprint = fingerprints[stage.name]
            decision = share(decide(layout, config, stage.name, fingerprint) if leader else None)
            if decision["action"] == "off":
                if leader:
                    switch_off(layout, stage.name, say)
            elif decision["action"] == "skip":
                say(f"── {stage.name}: up to date, skipped")
            else:
                say(f"── {stage.name}")
                run_stage(layout, stage, fingerprint, decision, actions[stage.name], leader)
    finally:
        release()
    return layout.root


def decide(layout: RunLayout, config: RunConfig, stage: str, fingerprint: str) -> dict[str, Any]:
    """Rank 0's decision for ``stage``: ``off``, ``skip`` (up to date) or ``run``."""
    if not enabled(config, stage):
        return {"action": "off"}
    record = read_record(layout, stage)
    if record.get("fingerprint") == fingerprint and record.get("status") == "done":
        return {"action": "skip"}
    if stage == "pretrain":
        return {"action": "run", "resume": pretrain_resumable(layout, fingerprint)}
    return {"action": "run"}


def run_stage(
    layout: RunLayout,
    stage: Stage,
    fingerprint: str,
    decision: dict[str, Any],
    action: Callable[[dict[str, Any]], Any],
    leader: bool,
) -> None:
    """Rank 0 runs the stage and records it; the other ranks train alongside (a training stage)
    or wait for its outcome, and stop if rank 0 failed."""
    record = layout.stage_record(stage.name)
    if leader:
        atomic_write_json(record, {"fingerprint": fingerprint, "status": "started", **decision})
    try:
        if leader or stage.on_every_rank:
            action(decision)
    except BaseException as error:
        if leader and not stage.on_every_rank:  # the others are waiting for this stage's outcome
            share({"failed": f"{type(error).__name__}: {error}".splitlines()[0]})
        raise
    if leader:
        atomic_write_json(record, {"fingerprint": fingerprint, "status": "done", **decision})
    outcome = share({"done": stage.name} if leader else None)
    if "failed" in outcome:
        raise ChestClipError(f"rank 0 failed in stage {stage.name}: {outcome['failed']}")


def switch_off(layout: RunLayout, stage: str, say: Callable[[str], None]) -> None:
    """A stage switched off leaves no outputs (nor record) behind from an earlier config."""
    say(f"── {stage}: switched off (stages.{stage}: false)")
    for path in (*layout.outputs(stage), layout.stage_record(stage)):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def read_record(layout: RunLayout, stage: str) -> dict[str, Any]:
    path = layout.stage_record(stage)
    return json.loads(path.read_text()) if path.is_file() else {}


def pretrain_resumable(layout: RunLayout, fingerprint: str) -> bool:
    """Resume only a pretraining started with the same config; stale checkpoints of another
    config are removed (the run's model is derived data)."""
    recorded = read_record(layout, "pretrain")
    if recorded.get("fingerprint") == fingerprint and layout.last_checkpoint.is_file():
        return True
    shutil.rmtree(layout.checkpoints, ignore_errors=True)
    return False


@dataclass(frozen=True)
class DemoResult:
    run: Path
    report: Path
    metrics: dict[str, Any]
    explanations: dict[str, Any]
    zero_shot: dict[str, Any]
    retrieval: dict[str, Any]
    seconds: float


def run_demo(
    out: str | Path = "runs/demo",
    studies: int = 600,
    epochs: int | None = None,
    n_boot: int = 1000,
    explain_limit: int = 40,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    device: str | torch.device | None = None,
) -> DemoResult:
    """Phantoms, then ``run_pipeline`` on them with configs/tiny.yaml: prepare → CLIP
    pre-training → heads and the fine-tuned image baseline → evaluation → explanations →
    zero-shot and retrieval → report.html."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ChestClipError(f"{out}: exists and is not empty; pass --overwrite to replace it")
        shutil.rmtree(out)
    config = load_run_config("tiny", [f"pretrain.epochs={epochs}"] if epochs else [])
    source = out / "phantoms"
    start = time.perf_counter()
    log(f"── phantoms: {studies} studies")
    generate_phantoms(source, studies, 256, "openi", config.seed, DEMO_VISIBILITY)
    run = run_pipeline(config, source, out / "run", log, n_boot, explain_limit, device)
    layout = RunLayout(run)

    def read(path: Path) -> dict[str, Any]:
        return json.loads(path.read_text())

    return DemoResult(
        run,
        layout.report,
        read(layout.metrics),
        read(layout.faithfulness),
        read(layout.zeroshot_metrics),
        read(layout.retrieval_metrics),
        time.perf_counter() - start,
    )
