"""The whole study in one call: ``chestclip demo`` on phantoms (offline, CPU-sized) and
``chestclip run`` on a user's data with a config, skipping stages that are up to date."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chestclip.config import RunConfig, load_run_config
from chestclip.data import prepare_dataset
from chestclip.data.fingerprint import source_fingerprint
from chestclip.errors import ChestClipError
from chestclip.evaluation.evaluate import evaluate
from chestclip.evaluation.report import write_report
from chestclip.explain.stage import explain_split
from chestclip.inference.model_card import write_model_card
from chestclip.phantom import generate_phantoms
from chestclip.retrieval.stage import run_retrieval, run_zero_shot
from chestclip.training.finetune import finetune_image_baseline
from chestclip.training.pretrain import pretrain
from chestclip.training.probe import probe
from chestclip.utils.io import atomic_write_json

# Lesions drawn clearly enough that a tiny model on 64-px images learns them within a minute of
# CPU training: a learnable task, not a trivial one (the image-only AUC stays well below 1).
DEMO_VISIBILITY = 3.0


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
) -> DemoResult:
    """Phantoms → prepare → CLIP pre-training → heads and the fine-tuned image baseline →
    evaluation → explanations → zero-shot and retrieval → report.html (configs/tiny.yaml)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ChestClipError(f"{out}: exists and is not empty; pass --overwrite to replace it")
        shutil.rmtree(out)
    config = load_run_config("tiny", [f"pretrain.epochs={epochs}"] if epochs else [])
    source, prepared, run = out / "phantoms", out / "prepared", out / "run"
    start = time.perf_counter()
    log(f"── phantoms: {studies} studies")
    generate_phantoms(source, studies, 256, "openi", config.seed, DEMO_VISIBILITY)
    log("── prepare")
    prepare_dataset(source, prepared, config.prepare)
    log("── CLIP pre-training")
    pretrain(prepared, run, config)
    log("── heads on frozen CLIP features")
    probe(run, prepared, config)
    log("── fine-tuned image baseline")
    finetune_image_baseline(prepared, run, config)
    log("── evaluate")
    metrics = evaluate(run, prepared, config, n_boot=n_boot)
    log("── explain (image-only head: what in the image drove it)")
    explanations = explain_split(run, prepared, "test", limit=explain_limit, head="image")
    log("── zero-shot and retrieval")
    zero_shot = run_zero_shot(run, prepared, n_boot=n_boot)
    retrieval = run_retrieval(run, prepared)
    log("── report and model card")
    report = write_report(run)
    write_model_card(run)
    seconds = time.perf_counter() - start
    return DemoResult(run, report, metrics, explanations, zero_shot, retrieval, seconds)


# Each stage's own config sections; its fingerprint also covers every stage before it.
STAGE_SECTIONS = {
    "prepare": ("seed", "prepare"),
    "pretrain": ("model", "pretrain"),
    "probe": ("probe",),
    "evaluate": (),
    "explain": (),
    "report": (),
}
STAGES_DIR = "stages"


def stage_fingerprints(config: RunConfig, source: Path) -> dict[str, str]:
    """A hash per stage of its config and of everything upstream, the source's files included
    (``source_fingerprint``): a stage reruns when it or anything before it changed."""
    dumped = config.model_dump(mode="json")
    fingerprints, upstream = {}, source_fingerprint(source)
    for stage, sections in STAGE_SECTIONS.items():
        payload = json.dumps(
            {"upstream": upstream, **{s: dumped[s] for s in sections}}, sort_keys=True
        )
        upstream = fingerprints[stage] = hashlib.sha256(payload.encode()).hexdigest()[:16]
    return fingerprints


def run_pipeline(
    config: RunConfig, source: str | Path, out: str | Path, log: Callable[[str], None] = print
) -> Path:
    """prepare → pretrain → probe → evaluate → explain → report (+ model card), each skipped
    when its recorded fingerprint matches; a killed pretraining resumes from its last checkpoint."""
    source, run = Path(source), Path(out)
    prepared = run / "prepared"
    fingerprints = stage_fingerprints(config, source)
    actions = {
        "prepare": lambda: prepare_dataset(source, prepared, config.prepare),
        "pretrain": lambda: pretrain(
            prepared, run, config, resume=pretrain_resumable(run, fingerprints["pretrain"])
        ),
        "probe": lambda: probe(run, prepared, config),
        "evaluate": lambda: evaluate(run, prepared, config),
        "explain": lambda: explain_split(run, prepared, "test", head="image"),
        "report": lambda: (write_report(run), write_model_card(run)),
    }
    for stage, action in actions.items():
        state = run / STAGES_DIR / f"{stage}.json"
        recorded = json.loads(state.read_text()) if state.is_file() else {}
        if recorded.get("fingerprint") == fingerprints[stage] and recorded.get("status") == "done":
            log(f"── {stage}: up to date, skipped")
            continue
        log(f"── {stage}")
        atomic_write_json(state, {"fingerprint": fingerprints[stage], "status": "started"})
        action()
        atomic_write_json(state, {"fingerprint": fingerprints[stage], "status": "done"})
    return run


def pretrain_resumable(run: Path, fingerprint: str) -> bool:
    """Resume only a pretraining started with the same config; stale checkpoints of another
    config are removed (the run's model is derived data)."""
    state = run / STAGES_DIR / "pretrain.json"
    recorded = json.loads(state.read_text()) if state.is_file() else {}
    checkpoints = run / "checkpoints"
    if recorded.get("fingerprint") == fingerprint and (checkpoints / "last.ckpt").is_file():
        return True
    shutil.rmtree(checkpoints, ignore_errors=True)
    return False
