"""View inference (frontal vs lateral): every candidate method's accuracy on varied phantoms.

Candidates, each fitted on training phantoms (seed 1) whose acquisition varies in every way
(``chestclip.phantom.acquisition``), then scored on test phantoms (seed 2) under each kind of
variation alone, all together, and all together twice as strong ("all x2", beyond what real
films show: a stress test):

- ``ridge`` (the default, ``chestclip.data.views``): the mediastinal ridge, a bright central band
  with a dark lung field at the same distance on both sides; one feature, logistic regression.
- ``symmetry``: mirror correlation of the image about its best vertical axis; one feature.
- ``pixels-lr``: logistic regression on the 16x16 image (learned, no anatomy in it).
- ``cnn``: a three-layer CNN on the 32x32 image, trained 30 epochs (learned; ``--no-cnn`` skips).

"image" is the accuracy per image, "study" the accuracy per image of two-image studies when the
study rule (``complete_views``: the more frontal-looking image is frontal) uses that method's
scores. ``--reports`` also builds the real-reports fixture (``chestclip phantom --reports``) and
scores the views ``prepare`` infers on it against the phantom truth. ``--fit`` prints the ridge's
fitted threshold and slope (the constants in ``chestclip.data.views``).

    python benchmarks/bench_views.py [--train 400] [--test 300] [--size 128] [--no-cnn] [--fit]
        [--reports PATH/NLMCXR_reports.tgz --studies 300 --projections indiana_projections.csv]
        [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from chestclip.data.records import FRONTAL, UNKNOWN
from chestclip.data.views import (
    complete_views,
    frontal_probability,
    mediastinal_ridge,
    working_image,
)
from chestclip.phantom.acquisition import CONDITIONS, vary_acquisition
from chestclip.phantom.study import plan_study, render_study

Scorer = Callable[[list[np.ndarray]], np.ndarray]  # images → P(frontal) [N]


def phantom_views(seed: int, studies: int, size: int) -> pd.DataFrame:
    """One row per rendered view: uid, image uint8 [size, size], frontal (1) or lateral (0)."""
    rows = []
    for uid in range(1, studies + 1):
        images = render_study(plan_study(seed, uid), size, visibility=1.0)
        rows.append({"uid": uid, "image": images.frontal.pixels, "frontal": 1})
        if images.lateral is not None:
            rows.append({"uid": uid, "image": images.lateral, "frontal": 0})
    return pd.DataFrame(rows)


def varied(
    views: pd.DataFrame, condition: str, seed: int, strength: float = 1.0
) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [vary_acquisition(image, rng, condition, strength) for image in views["image"]]


def mirror_symmetry(image: np.ndarray, max_shift: int = 8) -> float:
    """Best correlation between the image's thorax rows and their mirror image about a vertical
    axis within ``max_shift`` pixels of the centre."""
    x = working_image(image)
    size = x.shape[1]
    band, columns, best = x[int(size * 0.15) : int(size * 0.8)], np.arange(size), -1.0
    for shift in range(-max_shift, max_shift + 1):
        mirrored = size - 1 + shift - columns
        inside = (mirrored >= 0) & (mirrored < size)
        a = band[:, columns[inside]] - band[:, columns[inside]].mean()
        b = band[:, mirrored[inside]] - band[:, mirrored[inside]].mean()
        best = max(best, float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-9)))
    return best


def one_feature(feature: Callable[[np.ndarray], float]) -> Callable[..., Scorer]:
    def fit(images: list[np.ndarray], labels: np.ndarray) -> Scorer:
        model = LogisticRegression().fit(np.array([[feature(i)] for i in images]), labels)
        return lambda xs: model.predict_proba(np.array([[feature(i)] for i in xs]))[:, 1]

    return fit


def small(images: list[np.ndarray], side: int) -> np.ndarray:
    resized = [Image.fromarray(i).resize((side, side), Image.Resampling.BILINEAR) for i in images]
    return np.stack([np.asarray(r, np.float32) / 255.0 for r in resized])


def fit_pixels_lr(images: list[np.ndarray], labels: np.ndarray) -> Scorer:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    model.fit(small(images, 16).reshape(len(images), -1), labels)
    return lambda xs: model.predict_proba(small(xs, 16).reshape(len(xs), -1))[:, 1]


def fit_cnn(images: list[np.ndarray], labels: np.ndarray, epochs: int = 30) -> Scorer:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(64, 1),
    )  # fmt: skip
    x = torch.from_numpy(small(images, 32))[:, None]
    y = torch.tensor(labels, dtype=torch.float32)
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(64):
            loss = nn.functional.binary_cross_entropy_with_logits(net(x[batch])[:, 0], y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def score(xs: list[np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(net(torch.from_numpy(small(xs, 32))[:, None])[:, 0]).numpy()

    return score


def study_accuracy(views: pd.DataFrame, p_frontal: np.ndarray) -> float:
    """Accuracy over the images of two-image studies when the study rule decides."""
    pairs = views.groupby("uid")["uid"].transform("size").to_numpy() == 2
    table = pd.DataFrame({"uid": views["uid"], "projection": UNKNOWN})[pairs]
    guessed = complete_views(table.reset_index(drop=True), p_frontal[pairs]) == FRONTAL
    return float((guessed == (views["frontal"].to_numpy()[pairs] == 1)).mean())


def reports_fixture(reports: Path, studies: int, projections: Path | None) -> dict:
    """Build the real-reports fixture, prepare it, score the inferred views against the truth."""
    from chestclip.config import PrepareConfig
    from chestclip.data import prepare_dataset
    from chestclip.phantom.real_reports import check_inferred_views, generate_from_reports

    with tempfile.TemporaryDirectory() as tmp:
        fixture = generate_from_reports(
            reports, Path(tmp) / "fixture", studies=studies, image_size=128, projections=projections
        )
        prepared = prepare_dataset(
            fixture.out, Path(tmp) / "prepared", PrepareConfig(image_size=64)
        )
        check = check_inferred_views(prepared.out)  # no view table: every view is inferred
        return {
            "reports": fixture.n_reports,
            "images": prepared.counts["images"],
            "inferred": check.inferred,
            "accuracy": round(check.accuracy, 4),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=400, help="training studies (seed 1)")
    parser.add_argument("--test", type=int, default=300, help="test studies (seed 2)")
    parser.add_argument("--size", type=int, default=128, help="phantom size in pixels")
    parser.add_argument("--no-cnn", action="store_true", help="skip the CNN (minutes on a CPU)")
    parser.add_argument("--fit", action="store_true", help="print the ridge's fitted constants")
    parser.add_argument("--reports", type=Path, help="real NLMCXR_reports.tgz for the fixture")
    parser.add_argument("--studies", type=int, default=300, help="fixture reports")
    parser.add_argument("--projections", type=Path, help="indiana_projections.csv (view truth)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    train = phantom_views(1, args.train, args.size)
    train_images, labels = varied(train, "all", 11), train["frontal"].to_numpy()
    test = phantom_views(2, args.test, args.size)
    candidates: dict[str, Scorer] = {"ridge": frontal_probability}
    if args.fit:
        ridges = np.array([[mediastinal_ridge(i)] for i in train_images])
        model = LogisticRegression(C=100.0).fit(ridges, labels)
        slope = float(model.coef_[0, 0])
        threshold = -model.intercept_[0] / slope
        print(f"ridge fit on {len(ridges)} views: threshold {threshold:.3f}, slope {slope:.1f}")
    candidates["symmetry"] = one_feature(mirror_symmetry)(train_images, labels)
    candidates["pixels-lr"] = fit_pixels_lr(train_images, labels)
    if not args.no_cnn:
        start = time.perf_counter()
        candidates["cnn"] = fit_cnn(train_images, labels)
        print(f"cnn trained in {time.perf_counter() - start:.0f} s")

    truth = test["frontal"].to_numpy()
    results: dict = {"train_images": len(train), "test_images": len(test), "size": args.size}
    columns = {c: (c, 1.0) for c in CONDITIONS} | {"all x2": ("all", 2.0)}
    for column, (condition, strength) in columns.items():
        images = varied(test, condition, 22, strength)
        for name, score in candidates.items():
            p = score(images)
            results.setdefault(name, {})[column] = {
                "image": round(float(((p >= 0.5) == (truth == 1)).mean()), 4),
                "study": round(study_accuracy(test, p), 4),
            }
    width = max(len(c) for c in columns)
    print(f"{len(test)} test images ({args.test} studies), {args.size} px; image / study accuracy")
    print(" " * 10 + "".join(f"{c:>{width + 8}s}" for c in columns))
    for name in candidates:
        cells = (f"{r['image']:.3f}/{r['study']:.3f}" for r in results[name].values())
        print(f"{name:10s}" + "".join(f"{c:>{width + 8}s}" for c in cells))
    if args.reports:
        results["reports_fixture"] = reports_fixture(args.reports, args.studies, args.projections)
        print(f"real-reports fixture: {results['reports_fixture']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
