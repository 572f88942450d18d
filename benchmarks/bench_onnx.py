"""Eager PyTorch vs ONNX vs ONNX int8 for `chestclip predict`, in one run.

(a) Latency per image on the CPU, reading included, for the paper's ViT-B/16 + a 512-d image
    head at 224 px (random weights: the hub is unreachable here; timing does not depend on them),
    from a 2,048 px PNG like the real images, through `Predictor.predict` — eager with the heat
    map (predict's default), eager without it, ONNX float32, ONNX int8, ONNX with a heat map.
(b) The change in test ROC-AUC and in decisions on the phantom test split, for every
    image-reading head of a trained run (default: the demo's), float32 and int8 against eager.

    python benchmarks/bench_onnx.py [--run runs/demo/run --data runs/demo/prepared] [--images 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.metrics import roc_auc_score

from chestclip.data import PreparedData
from chestclip.evaluation.features import FeatureCache
from chestclip.export.onnx import OnnxScorer, export_onnx
from chestclip.inference.predict import Predictor, validation_thresholds
from chestclip.models import load_clip, save_clip, train_wordpiece_tokenizer
from chestclip.models.heads import MLPHead
from chestclip.training.probe import head_features, load_head
from full_size import random_paper_clip, random_pngs


def vit_b16_run(root: Path) -> Path:
    """A run directory holding a random ViT-B/16 CLIP and a 512-d image head (1024→512→512→2
    is the multimodal head; the image head reads the 512-d image embedding)."""
    run = root / "vit-b16"
    tokenizer = train_wordpiece_tokenizer(["no acute cardiopulmonary disease"], vocab_size=100)
    save_clip(random_paper_clip().eval(), tokenizer, run / "clip")
    data = {"image_size": 224, "resize": "pad", "text_fields": ["indication", "findings"],
            "clean": "safe", "views": "all"}  # fmt: skip
    (run / "clip/data.json").write_text(json.dumps(data))
    head = MLPHead(512, (512, 512))
    (run / "heads/image").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()},
              run / "heads/image/head.safetensors")  # fmt: skip
    info = {"name": "image", "kind": "image", "inputs": ["image"], "text_fields": None,
            "in_dim": 512, "hidden_sizes": [512, 512], "dropout": 0.0}  # fmt: skip
    (run / "heads/image/head.json").write_text(json.dumps(info))
    return run


def seconds_per_image(predictor: Predictor, files: list[Path], **options) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads) per image; on a shared machine the CPU time is
    the steadier of the two."""
    predictor.predict(predictor.read(files[0]), drafts=0, **options)  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for file in files:
        predictor.predict(predictor.read(file), drafts=0, **options)
    return (time.perf_counter() - start) / len(files), (time.process_time() - cpu) / len(files)


def latency_table(files: list[Path], root: Path, threads: int) -> None:
    run = vit_b16_run(root)
    export_onnx(run, run / "onnx")
    eager, onnx = Predictor.load(run), Predictor.load(run, runtime="onnx")
    rows = [
        ("eager, score + attention-gradcam heat map", seconds_per_image(eager, files)),
        ("eager, score only", seconds_per_image(eager, files, heatmap=False)),
        ("onnx float32, score only", seconds_per_image(onnx, files)),
    ]
    export_onnx(run, run / "onnx", quantize="int8")
    int8 = Predictor.load(run, runtime="onnx")
    rows.append(("onnx int8, score only", seconds_per_image(int8, files)))
    rows.append(("onnx float32 + eager heat map", seconds_per_image(onnx, files, heatmap=True)))
    print(
        f"\n(a) ViT-B/16 at 224 px, 2,048 px PNG in, {threads} threads, per image (read included)"
    )
    print(f"  {'':45s} {'wall s':>7s} {'CPU s':>7s}")
    for name, (wall, cpu) in rows:
        print(f"  {name:45s} {wall:7.3f} {cpu:7.3f}")


def auc_table(run: Path, data_dir: Path, root: Path) -> None:
    model, tokenizer = load_clip(run)
    data = PreparedData(data_dir)
    cache = FeatureCache(root / "cache", model, tokenizer, data, run / "clip/model.safetensors")
    test = data.split_images("test")
    pixels = data.array[test["row"].to_numpy()].astype(np.float32)[:, None] / 255
    labels = test["label"].to_numpy()
    thresholds = validation_thresholds(run)
    scorers = {}
    for quantize in (None, "int8"):
        exported = export_onnx(run, root / f"onnx-{quantize or 'fp32'}", quantize)
        scorers[quantize or "float32"] = OnnxScorer(exported.directory)
    print(f"\n(b) {run}: phantom test split, {len(test)} images, ROC-AUC per image")
    print(f"  {'head':24s} {'eager':>7s} {'float32':>8s} {'int8':>8s}  decisions changed f32/int8")
    for head_dir in sorted((run / "heads").iterdir()):
        head, info = load_head(head_dir)
        if "image" not in info["inputs"]:
            continue
        fields = None if info["text_fields"] is None else tuple(info["text_fields"])
        features = head_features(cache, info["kind"], "test", fields)
        with torch.no_grad():
            eager = head(torch.from_numpy(features)).softmax(-1)[:, 1].numpy()
        aucs, changed = [roc_auc_score(labels, eager)], []
        for scorer in scorers.values():
            exported_features = features.copy()
            image = scorer.image_embeddings(pixels)
            exported_features[:, : image.shape[1]] = image
            found = scorer.probabilities(info["name"], exported_features)
            aucs.append(roc_auc_score(labels, found))
            threshold = thresholds.get(info["name"], 0.5)
            changed.append(int(((found >= threshold) != (eager >= threshold)).sum()))
        deltas = " ".join(f"{auc - aucs[0]:+.4f}" for auc in aucs[1:])
        print(f"  {info['name']:24s} {aucs[0]:7.4f} {deltas:>17s}  {changed[0]}/{changed[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo/run"))
    parser.add_argument("--data", type=Path, default=Path("runs/demo/prepared"))
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        latency_table(random_pngs(root, args.images), root, args.threads)
        if (args.run / "heads").is_dir() and (args.run / "eval/metrics.json").is_file():
            auc_table(args.run, args.data, root)
        else:
            print(f"\n{args.run}: no evaluated run (`chestclip demo` makes one); AUC skipped")


if __name__ == "__main__":
    main()
