"""Full-size CLIP training throughput on a GPU: ViT-B/16 + BERT-base (random weights: the hub is
unreachable there), batch 64, bf16 autocast, SDPA attention, optionally torch.compile.

Prints pairs/s and model FLOP utilisation (MFU). Finishes in well under 5 minutes on one H100.

    python benchmarks/gpu_clip_throughput.py [--batch 64] [--text-length 128] [--compile]
    python benchmarks/gpu_clip_throughput.py --device cpu --batch 2 --steps 2 --warmup 1  # smoke
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import BertConfig, ViTConfig

from chestclip.models import ClipLoss
from full_size import random_paper_clip


def transformer_forward_flops(layers: int, hidden: int, intermediate: int, tokens: int) -> float:
    """Matmul FLOPs of one encoder forward pass over ``tokens`` tokens (2 per multiply-add)."""
    per_layer = (
        2 * tokens * (4 * hidden * hidden + 2 * hidden * intermediate) + 4 * tokens**2 * hidden
    )
    return layers * per_layer


def clip_train_flops(vit: ViTConfig, bert: BertConfig, text_length: int, embed_dim: int) -> float:
    """FLOPs of one training step per pair (forward + backward ≈ 3 × forward)."""
    patches = (vit.image_size // vit.patch_size) ** 2
    image = transformer_forward_flops(
        vit.num_hidden_layers, vit.hidden_size, vit.intermediate_size, patches + 1
    )
    image += (
        2 * patches * (vit.num_channels * vit.patch_size**2) * vit.hidden_size
    )  # patch embedding
    text = transformer_forward_flops(
        bert.num_hidden_layers, bert.hidden_size, bert.intermediate_size, text_length
    )
    projections = 2 * (vit.hidden_size + bert.hidden_size) * embed_dim
    return 3 * (image + text + projections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--text-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="cuda")
    parser.add_argument(
        "--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H100/H200 SXM)"
    )
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = random_paper_clip(args.text_length).to(device).train()
    vit, bert, config = ViTConfig(), BertConfig(), model.config  # what random_paper_clip builds
    loss_fn = ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    step_model = torch.compile(model) if args.compile else model

    pixels = torch.rand(args.batch, 1, 224, 224, device=device)
    input_ids = torch.randint(1000, bert.vocab_size, (args.batch, args.text_length), device=device)
    mask = torch.ones_like(input_ids)
    ids = torch.arange(args.batch, device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = step_model(pixels, input_ids, mask)
            loss = loss_fn(
                out.image_embeds.float(), out.text_embeds.float(), out.logit_scale, ids, ids
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    pairs_per_s = args.steps * args.batch / seconds
    flops = clip_train_flops(vit, bert, args.text_length, config.embed_dim) * pairs_per_s
    on_gpu = device.type == "cuda"
    result = {
        "device": torch.cuda.get_device_name() if on_gpu else "cpu",
        "batch": args.batch, "text_length": args.text_length, "compile": args.compile,
        "pairs_per_s": round(pairs_per_s, 1), "achieved_tflops": round(flops / 1e12, 1),
        "mfu": round(flops / (args.peak_tflops * 1e12), 3),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
    }  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
