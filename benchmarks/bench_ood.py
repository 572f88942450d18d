"""The out-of-distribution guard measured: AUROC of every score per kind of outlier against the
in-distribution test images, the share of each kind refused at the guard's threshold, and the
share of in-distribution test images wrongly refused (95 % Clopper-Pearson interval).

Trains the demo's tiny model (configs/tiny.yaml) on --studies phantom studies (256 px, prepared
at 64 px) with --views frontal (default: lateral films are then outliers too) or all, evaluates
it (which fits the guard on the training and validation splits), then scores --per-kind images
of each kind in ``chestclip.phantom.outliers`` plus lateral films for a frontal run, all prepared
as ``chestclip predict`` prepares a file. Finished stages are reused with the same --out.

    python benchmarks/bench_ood.py [--out runs/ood-bench] [--views frontal|all] [--studies 1000]
        [--per-kind 60]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from chestclip.config import load_run_config
from chestclip.data import PreparedData, prepare_dataset
from chestclip.data.images import fit_square, to_grey
from chestclip.data.records import LATERAL
from chestclip.evaluation.evaluate import evaluate
from chestclip.evaluation.features import encode_images
from chestclip.inference.ood import OODGuard
from chestclip.models import load_clip
from chestclip.phantom import generate_phantoms
from chestclip.phantom.layouts import image_path
from chestclip.phantom.outliers import DAMAGED, MADE
from chestclip.training.pretrain import pretrain
from chestclip.training.probe import HEADS_DIR, load_head, probe

SOURCE_SIZE = 256


def build_run(out: Path, studies: int, views: str) -> tuple[Path, Path, Path]:
    """Phantoms → prepare → pretrain → probe → evaluate (fits the guard), each once."""
    config = load_run_config("tiny", [f"prepare.views={views}"])
    source, prepared, run = out / "phantoms", out / "prepared", out / "run"
    if not source.exists():
        generate_phantoms(source, studies, SOURCE_SIZE, "openi", config.seed, 3.0)
    if not prepared.exists():
        prepare_dataset(source, prepared, config.prepare)
    if not (run / "clip/model.safetensors").exists():
        pretrain(prepared, run, config)
        probe(run, prepared, config)
    if not (run / "ood/guard.json").exists():
        evaluate(run, prepared, config, n_boot=0)
    return source, prepared, run


def outliers(
    data: PreparedData, per_kind: int, size: int, resize: str, seed: int
) -> dict[str, np.ndarray]:
    """Each kind's images uint8 [n, size, size], prepared like a file given to predict."""
    rng = np.random.default_rng(seed)
    fit = lambda raw: fit_square(to_grey(Image.fromarray(raw)), size, resize)  # noqa: E731
    kinds = {
        name: [fit(make(rng, SOURCE_SIZE)) for _ in range(per_kind)] for name, make in MADE.items()
    }
    test = data.images[data.images["split"] == "test"]
    frontal_files = test[test["projection"] != LATERAL]["file"].tolist()
    films = [np.asarray(Image.open(f).convert("L")) for f in frontal_files[:per_kind]]
    for name, damage in DAMAGED.items():
        kinds[name] = [fit(damage(film, rng)) for film in films]
    return {name: np.stack(images) for name, images in kinds.items()}


def lateral_films(source: Path, data: PreparedData, per_kind: int, size: int, resize: str):
    """Lateral films of the test studies, left out of a frontal-only dataset."""
    studies = pd.read_csv(source / "phantom_studies.csv", dtype=str, keep_default_na=False)
    test = studies[studies["uid"].isin(data.images.loc[data.images["split"] == "test", "uid"])]
    ids = [i for i in test["lateral_image_id"] if i][:per_kind]
    films = [Image.open(source / image_path("openi", i)).convert("L") for i in ids]
    return np.stack([fit_square(np.asarray(film), size, resize) for film in films])


def all_scores(run: Path, guard: OODGuard, images: np.ndarray) -> dict[str, np.ndarray]:
    model, _ = load_clip(run)
    embeddings = encode_images(model.eval(), images)
    head, _ = load_head(run / HEADS_DIR / "image")
    with torch.no_grad():
        logits = head(torch.from_numpy(embeddings)).numpy()
    return guard.scores(images, embeddings, logits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/ood-bench"))
    parser.add_argument("--views", choices=("frontal", "all"), default="frontal")
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--per-kind", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    source, prepared, run = build_run(args.out, args.studies, args.views)
    data = PreparedData(prepared)
    guard = OODGuard.load(run)
    size, resize = data.array.shape[1], data.summary["config"]["resize"]
    kinds = outliers(data, args.per_kind, size, resize, args.seed)
    if args.views == "frontal":
        kinds["lateral"] = lateral_films(source, data, args.per_kind, size, resize)
    test = data.array[data.split_images("test")["row"].to_numpy()]
    inside = all_scores(run, guard, test)
    rows, false_refusal = [], {}
    for method, scores in inside.items():
        refused = int((scores > guard.thresholds[method]).sum())
        interval = binomtest(refused, len(scores)).proportion_ci()
        false_refusal[method] = {
            "refused": refused,
            "n": len(scores),
            "share": refused / len(scores),
            "ci95": [interval.low, interval.high],
        }
    for kind, images in kinds.items():
        found = all_scores(run, guard, images)
        for method, scores in found.items():
            truth = np.r_[np.zeros(len(inside[method])), np.ones(len(scores))]
            rows.append(
                {
                    "kind": kind,
                    "method": method,
                    "auroc": roc_auc_score(truth, np.r_[inside[method], scores]),
                    "refused": float(np.mean(scores > guard.thresholds[method])),
                }
            )
    table = pd.DataFrame(rows)
    auroc = table.pivot(index="kind", columns="method", values="auroc")
    refused = table.pivot(index="kind", columns="method", values="refused")
    auroc.loc["mean"], refused.loc["mean"] = auroc.mean(), refused.mean()
    result = {
        "views": args.views,
        "studies": args.studies,
        "per_kind": args.per_kind,
        "guard": {"method": guard.method, "thresholds": guard.thresholds, **guard.meta},
        "false_refusal_test": false_refusal,
        "auroc": auroc.round(4).to_dict(),
        "refused_at_threshold": refused.round(4).to_dict(),
    }
    (args.out / "ood_benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"views {args.views}; in-distribution test images: {len(test)}")
    print("\nAUROC (outlier vs in-distribution test images)\n" + auroc.round(3).to_string())
    print("\nshare refused at the validation 99 % threshold\n" + refused.round(2).to_string())
    print("\nin-distribution test images wrongly refused")
    for method, found in false_refusal.items():
        low, high = found["ci95"]
        print(f"  {method:12s} {found['refused']}/{found['n']} = {found['share']:.1%} "
              f"(95 % CI {low:.1%}-{high:.1%})")  # fmt: skip


if __name__ == "__main__":
    main()
