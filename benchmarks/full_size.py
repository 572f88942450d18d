"""The paper's full-size CLIP with random weights (the hub is unreachable on benchmark machines;
speed does not depend on the weights) and full-size X-ray files, shared by the benchmark scripts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from transformers import BertConfig, ViTConfig

from chestclip.models import ChestCLIP, ChestCLIPConfig, build_clip


def random_paper_clip(max_text_length: int = 128, attn_implementation: str = "sdpa") -> ChestCLIP:
    """ViT-B/16 at 224 px + BERT-base (transformers' default configs), 512-d projections."""
    vit, bert = ViTConfig(), BertConfig()
    config = ChestCLIPConfig(
        image_encoder="vit-b16-random",
        text_encoder="bert-base-random",
        attn_implementation=attn_implementation,
        image_encoder_config=vit.to_dict(),
        text_encoder_config=bert.to_dict(),
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
        max_text_length=max_text_length,
    )
    return build_clip(config)


def random_pngs(folder: Path, count: int, side: int = 2048) -> list[Path]:
    """``count`` grey PNGs of ``side`` px (the real images' size) of seeded noise in ``folder``."""
    rng = np.random.default_rng(0)
    files = []
    for i in range(count):
        files.append(folder / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (side, side), dtype=np.uint8)).save(files[-1])
    return files
