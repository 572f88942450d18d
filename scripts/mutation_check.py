"""Mutation check: break each rule that matters on purpose and confirm a named test notices.

Each mutation below is one textual patch of a module under ``src/chestclip``. For each, the
sources are copied to a temporary directory, the patch applied there (the worktree is never
touched), and the named tests run against that copy (``PYTHONPATH`` first); the mutation is
"caught" when they fail, "SURVIVED" when they pass. The named tests are first run once on the
unchanged sources, where they must pass. A small list instead of ``mutmut``: mutmut mutates
every operator of every line, which takes hours on this suite, while these are the rules a
wrong number would come from.

    nice -n 10 python scripts/mutation_check.py            # every mutation (a few minutes)
    python scripts/mutation_check.py --only red-flag-never  # one of them
    python scripts/mutation_check.py --list

Exit status 1 when any mutation survived. Not run in CI (it trains tiny models repeatedly).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    rule: str
    module: str  # path under src/chestclip
    original: str  # must occur exactly once in the module
    mutated: str
    tests: tuple[str, ...]  # pytest node ids that must fail


MUTATIONS = (
    Mutation(
        "split-rounds",
        "split sizes floor f·n (the paper's rule), not round it",
        "data/split.py",
        "n_train = math.floor(round(fractions[0] * n, 6))",
        "n_train = round(fractions[0] * n)",
        ("tests/data/test_split.py::test_paper_sizes",),
    ),
    Mutation(
        "threshold-on-test",
        "the decision threshold is chosen on validation data only",
        "evaluation/metrics.py",
        'choose_threshold(val["label"], val[score_column],',
        'choose_threshold(test["label"], test[score_column],',
        ("tests/evaluation/test_evaluate_head.py",),
    ),
    Mutation(
        "loss-ignores-same-text",
        "identical reports are positives of each other in the InfoNCE loss",
        "models/loss.py",
        "return same_study | same_text",
        "return same_study",
        ("tests/models/test_loss.py",),
    ),
    Mutation(
        "bootstrap-per-image",
        "the bootstrap resamples patients, not images",
        "evaluation/metrics.py",
        "units = np.arange(n) if groups is None else np.asarray(groups)",
        "units = np.arange(n)",
        ("tests/evaluation/test_bootstrap.py::test_resamples_whole_patients",),
    ),
    Mutation(
        "heads-keep-worst-epoch",
        "heads and the fine-tuned baseline keep their best validation-AUC epoch",
        "training/classifier_module.py",
        'monitor="val/auc", mode="max"',
        'monitor="val/auc", mode="min"',
        ("tests/training/test_keep_best.py",),
    ),
    Mutation(
        "clip-keeps-highest-loss",
        "CLIP keeps the checkpoint with the lowest validation loss",
        "training/pretrain.py",
        'filename="best", monitor="val/loss", mode="min"',
        'filename="best", monitor="val/loss", mode="max"',
        (
            "tests/training/test_pretrain.py"
            "::test_the_kept_clip_is_the_epoch_with_the_lowest_validation_loss",
        ),
    ),
    Mutation(
        "red-flag-never",
        "the below-the-bag-of-words red flag is raised when the paired CI lies below 0",
        "evaluation/evaluate.py",
        'and difference["ci_high"] < 0',
        'and difference["ci_high"] < -1',
        (
            "tests/evaluation/test_comparisons.py"
            "::test_the_red_flag_is_raised_exactly_when_the_paired_interval_lies_below_zero",
        ),
    ),
    Mutation(
        "red-flag-on-point-estimate",
        "the red flag needs the whole interval below 0, not the point estimate",
        "evaluation/evaluate.py",
        'and difference["ci_high"] < 0',
        'and difference["value"] < 0',
        (
            "tests/evaluation/test_comparisons.py"
            "::test_the_red_flag_is_raised_exactly_when_the_paired_interval_lies_below_zero",
        ),
    ),
)


def run_tests(src: Path, tests: tuple[str, ...]) -> tuple[bool, float]:
    """(did the tests pass, seconds) with ``src`` first on the import path."""
    env = os.environ | {
        "PYTHONPATH": str(src),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    imported = subprocess.run(
        [sys.executable, "-c", "import chestclip; print(chestclip.__file__)"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if not Path(imported).is_relative_to(src):
        raise SystemExit(f"chestclip imports from {imported}, not from {src}")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 2+: collection error, usage error, interrupted
        raise SystemExit(f"pytest could not run {tests}:\n{done.stdout[-2000:]}{done.stderr}")
    return done.returncode == 0, time.monotonic() - start


def mutated_copy(mutation: Mutation, workdir: Path) -> Path:
    """A copy of ``src/`` with ``mutation`` applied; its ``src`` directory."""
    src = workdir / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    module = src / "chestclip" / mutation.module
    text = module.read_text()
    if text.count(mutation.original) != 1:
        raise SystemExit(
            f"{mutation.name}: {module.relative_to(workdir)} holds `{mutation.original}` "
            f"{text.count(mutation.original)} times, not once; update the mutation"
        )
    module.write_text(text.replace(mutation.original, mutation.mutated))
    return src


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="Run this mutation only (repeatable).")
    parser.add_argument("--list", action="store_true", help="List the mutations and exit.")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.list or not chosen:
        for mutation in MUTATIONS:
            print(f"{mutation.name:28} {mutation.rule}")
        return 0 if args.list else 2

    every_test = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
    passed, seconds = run_tests(ROOT / "src", every_test)
    if not passed:
        print(f"the named tests fail on the unchanged sources ({seconds:.0f} s): fix that first")
        return 1
    print(f"unchanged sources: the named tests pass ({seconds:.0f} s)\n")
    print("| mutation | rule | caught by | result | seconds |")
    print("| --- | --- | --- | --- | --- |")
    survived = []
    for mutation in chosen:
        with tempfile.TemporaryDirectory(prefix="chestclip-mutation-") as workdir:
            passed, seconds = run_tests(mutated_copy(mutation, Path(workdir)), mutation.tests)
        result = "SURVIVED" if passed else "caught"
        if passed:
            survived.append(mutation.name)
        tests = ", ".join(f"`{t.removeprefix('tests/')}`" for t in mutation.tests)
        print(f"| {mutation.name} | {mutation.rule} | {tests} | {result} | {seconds:.0f} |")
    print(f"\n{len(chosen) - len(survived)} of {len(chosen)} mutations caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
