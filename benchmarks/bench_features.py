"""Feature extraction throughput: images/s through ``encode_images``, the path ``probe``,
``evaluate``, zero-shot and retrieval take, for the tiny presets and the paper's ViT-B/16 (random
weights: speed does not depend on them), on the CPU or a GPU.

    python benchmarks/bench_features.py                                  # CPU, 2 threads
    python benchmarks/bench_features.py --device cuda --precision bf16-mixed --images 2048
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from chestclip.config import load_run_config
from chestclip.evaluation.features import encode_images
from chestclip.models import ChestCLIP, build_clip
from chestclip.training.pretrain import clip_config
from chestclip.utils.device import resolve_device
from full_size import random_paper_clip


def tiny_clip(preset: str) -> ChestCLIP:
    """A packaged CPU-sized config's model (``tiny``: ResNet, ``tiny-vit``: ViT) at 64 px."""
    return build_clip(clip_config(load_run_config(preset), 64), vocab_size=500)


def images_per_second(
    model: ChestCLIP, images: int, batch: int, device: torch.device, precision: str
) -> tuple[float, float]:
    """Images per wall-clock second (median of three passes over ``images`` random uint8 images,
    after a warm-up) and per CPU-second of this process (all its threads: on a shared machine
    the figure other jobs' load changes least)."""
    model = model.to(device).eval()
    size = model.config.image_size
    pixels = np.random.default_rng(0).integers(0, 256, (images, size, size), dtype=np.uint8)
    encode_images(model, pixels[:batch], batch, precision)  # warm-up: kernels, allocator
    wall, cpu = [], []
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        encode_images(model, pixels, batch, precision)  # returns on the CPU: synchronised
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return images / float(np.median(wall)), images / float(np.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="cpu, cuda or cuda:N [cuda when available]")
    parser.add_argument("--precision", default="32-true", help="32-true, bf16-mixed or 16-mixed")
    parser.add_argument("--images", type=int, default=256, help="images per pass, tiny models")
    parser.add_argument("--vit-images", type=int, default=64, help="images per pass, ViT-B/16")
    parser.add_argument("--batch", type=int, default=64, help="encode_images batch size")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"{args.threads} threads"
    )
    print(f"{device} ({name}), {args.precision}, batch {args.batch}")
    models = {
        "tiny (ResNet, 64 px)": (lambda: tiny_clip("tiny"), args.images),
        "tiny-vit (64 px)": (lambda: tiny_clip("tiny-vit"), args.images),
        "ViT-B/16 (224 px)": (random_paper_clip, args.vit_images),
    }
    for label, (build, images) in models.items():
        wall, cpu = images_per_second(build(), images, args.batch, device, args.precision)
        print(f"{label:22s} {wall:9.1f} images/s, {cpu:9.1f} per CPU-second ({images} a pass)")


if __name__ == "__main__":
    main()
