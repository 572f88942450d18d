"""Seconds per explained image for every method, on the CPU: a ViT-B/16 (224 px, random
weights: the hub is unreachable here; timing does not depend on the weights) and the tiny
presets. The multimodal head's logit is explained, as ``chestclip explain`` does.

    python benchmarks/bench_explain.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from chestclip.explain import explain, head_score
from chestclip.explain.registry import methods_for
from chestclip.models import ChestCLIPConfig, build_clip
from chestclip.models.heads import MLPHead
from full_size import random_paper_clip


def model_for(name: str) -> tuple[torch.nn.Module, int]:
    if name == "vit-b16":
        return random_paper_clip().eval(), 224
    config = ChestCLIPConfig(
        image_encoder=name, text_encoder="tiny-bert", embed_dim=64, image_size=64
    )
    return build_clip(config, vocab_size=200).eval(), 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{'encoder':12s} {'method':18s} seconds/image ({args.threads} CPU threads)")
    for name in ("vit-b16", "tiny-vit", "tiny-resnet"):
        model, size = model_for(name)
        head = MLPHead(2 * model.config.embed_dim, (512, 512)).eval()
        text = torch.nn.functional.normalize(torch.randn(model.config.embed_dim), dim=0)
        score = head_score(model, head, "multimodal", text)
        pixels = torch.rand(1, 1, size, size)
        for method in methods_for(model):
            explain(model, pixels, score, method)  # warm-up
            start = time.perf_counter()
            for _ in range(args.repeats):
                explain(model, pixels, score, method)
            print(f"{name:12s} {method:18s} {(time.perf_counter() - start) / args.repeats:.3f}")


if __name__ == "__main__":
    main()
