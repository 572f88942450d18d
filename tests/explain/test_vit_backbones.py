"""The ViT explanation methods on every ViT backbone chestclip can hold: transformers' ViT (the
preset), CLIP's vision tower (an HF CLIPModel), and the open_clip towers converted by
``model.init_from`` (a timm ViT → ViTModel, an OpenAI ViT → CLIPVisionModel)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chestclip.explain import explain, head_score, methods_for
from chestclip.explain.stage import default_method
from chestclip.models import ChestCLIP, ChestCLIPConfig, build_clip
from chestclip.models.heads import MLPHead

VIT_METHODS = ["attention-gradcam", "gradcam", "rollout"]
BACKBONES = {  # name → (dual-encoder source or None for the preset, expected backbone class)
    "tiny-vit": (None, "ViTModel"),
    "hf-clip": ("hf-clip", "CLIPVisionModel"),
    "open_clip-timm": ("biomedclip", "ViTModel"),
    "open_clip-openai": ("chexzero", "CLIPVisionModel"),
}
SIZE = 64  # the sources are 32-px checkpoints: position embeddings are interpolated


@pytest.fixture(scope="module")
def vit_models(dual_encoder_sources: dict) -> dict[str, ChestCLIP]:
    models = {}
    for name, (source, _) in BACKBONES.items():
        torch.manual_seed(0)
        if source is None:
            config = ChestCLIPConfig(image_encoder="tiny-vit", text_encoder="tiny-bert",
                                     embed_dim=16, image_size=SIZE)  # fmt: skip
            models[name] = build_clip(config, vocab_size=100).eval()
        else:
            init_from = str(dual_encoder_sources[source].path)
            config = ChestCLIPConfig(init_from=init_from, image_size=SIZE, max_text_length=16)
            models[name] = build_clip(config).eval()
    return models


def _head(model: ChestCLIP) -> MLPHead:
    torch.manual_seed(0)
    return MLPHead(model.config.embed_dim, (16,)).eval()


def _pixels(seed: int) -> torch.Tensor:
    return torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_vit_backbone_gets_the_vit_methods(vit_models: dict, backbone: str) -> None:
    model = vit_models[backbone]
    assert type(model.image_encoder.backbone).__name__ == BACKBONES[backbone][1]
    assert model.image_encoder.token_grid == (8, 8)
    assert methods_for(model) == VIT_METHODS
    assert default_method(model) == "attention-gradcam"


def _non_empty_map(model: ChestCLIP, pixels: torch.Tensor, score, method: str) -> np.ndarray:
    """The map of ``score``, or of ``-score`` when the first is all zero: a random head's
    evidence can be negative on every patch, which the methods' ReLU rightly empties."""
    heatmap = explain(model, pixels, score, method)
    return heatmap if heatmap.max() > 0 else explain(model, pixels, lambda x: -score(x), method)


@pytest.mark.parametrize("method", VIT_METHODS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_vit_methods_explain_every_backbone(vit_models: dict, backbone: str, method: str) -> None:
    model = vit_models[backbone]
    score = head_score(model, _head(model), "image")
    maps = [_non_empty_map(model, _pixels(seed), score, method) for seed in (1, 2, 3)]
    for heatmap in maps:
        assert heatmap.shape == (SIZE, SIZE) and heatmap.dtype == np.float32
        assert heatmap.min() == 0.0 and heatmap.max() == 1.0  # gradients reached the blocks
    assert any(not np.allclose(maps[0], other) for other in maps[1:])  # maps follow the image
    backbone_module = model.image_encoder.backbone
    assert all(not m._forward_hooks for m in backbone_module.modules())  # hooks removed
    assert backbone_module.config._attn_implementation == "sdpa"  # eager only while explaining
