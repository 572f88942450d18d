"""Predict latency per image on the CPU, reading included.

(a) `chestclip predict`'s code path on a trained run (default: the demo's run, tiny model):
    read + resize + every usable head + heat map + ROI zones + drafts, per file.
(b) The same steps for a ViT-B/16 + 512-d head at 224 px (random weights: the hub is unreachable
    here; timing does not depend on them), from a 2,048 px PNG like the real images.

    python benchmarks/bench_predict.py [--run runs/demo/run] [--images 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from chestclip.data.readers import read_xray_for_model
from chestclip.explain import explain, head_score
from chestclip.explain.roi import top_zones, zone_masses
from chestclip.inference.predict import predict_files
from chestclip.models.heads import MLPHead
from chestclip.utils.run_layout import RunLayout
from full_size import random_paper_clip, random_pngs


def vit_b16_seconds(png: Path, repeats: int) -> float:
    model = random_paper_clip().eval()
    head = MLPHead(model.config.embed_dim, (512, 512)).eval()
    score = head_score(model, head, "image")
    start = time.perf_counter()
    for _ in range(repeats):
        pixels = torch.from_numpy(read_xray_for_model(png, 224, "pad") / np.float32(255))[
            None, None
        ]
        with torch.no_grad():
            score(pixels)
        top_zones(zone_masses(explain(model, pixels, score, "attention-gradcam")))
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo/run"))
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        files = random_pngs(Path(tmp), args.images)
        if RunLayout(args.run).heads.is_dir():
            list(predict_files(args.run, files[:1]))  # warm-up
            start = time.perf_counter()
            results = list(predict_files(args.run, files, cam_dir=Path(tmp) / "cams"))
            seconds = (time.perf_counter() - start) / len(results)
            print(f"tiny run {args.run}: {seconds:.3f} s/image (2,048 px PNG in, overlay, drafts)")
        else:
            print(
                f"{args.run}: no trained run (run `chestclip demo` first); skipping the tiny model"
            )
        print(
            f"ViT-B/16, 224 px: {vit_b16_seconds(files[0], 3):.3f} s/image "
            f"(read + resize + score + attention-gradcam + zones, {args.threads} threads)"
        )


if __name__ == "__main__":
    main()
