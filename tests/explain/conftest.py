"""Tiny CLIP models for explanation tests: random ones, and hand-built "lesion detectors".

The hand-built models are the constructions the localisation and faithfulness tests rely on:
their weights are set so that the score provably depends on the image only through patches
brighter than mid-grey. On a mid-grey image with one bright square (the lesion), every other
patch contributes exactly nothing, so a correct explanation must peak on the lesion. The lesion
sits off the diagonal: a transposed or flipped map would miss it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from chestclip.models import ChestCLIP, ChestCLIPConfig, build_clip
from chestclip.models.heads import MLPHead

SIZE = 64
LESION = (slice(8, 24), slice(40, 56))  # rows, columns: 2 x 2 patches of the 8 x 8 token grid
GAIN = 4.0  # head weight: logit(diseased) = GAIN * z_0, z the unit-norm image embedding
VALUE = 0.03  # small attention values keep the ViT's score off saturation (P(lesion) ~ 0.9)


def tiny_clip(image_encoder: str, attn_implementation: str = "eager", seed: int = 0) -> ChestCLIP:
    """A random tiny CLIP (64 px, 32-d embeddings) in eval mode."""
    torch.manual_seed(seed)
    config = ChestCLIPConfig(
        image_encoder=image_encoder,
        text_encoder="tiny-bert",
        embed_dim=32,
        image_size=SIZE,
        attn_implementation=attn_implementation,
    )
    return build_clip(config, vocab_size=100).eval()


@dataclass(frozen=True)
class Lesion:
    """Mid-grey ``pixels`` [1, 1, 64, 64] with a white 16 x 16 square, and its ``mask``."""

    pixels: torch.Tensor
    mask: np.ndarray

    def near(self, margin: int) -> np.ndarray:
        """The lesion grown by ``margin`` pixels on every side, bool [64, 64]."""
        (rows, cols), grown = LESION, np.zeros_like(self.mask)
        grown[
            rows.start - margin : rows.stop + margin, cols.start - margin : cols.stop + margin
        ] = 1
        return grown


def _lesion() -> Lesion:
    pixels = torch.full((1, 1, SIZE, SIZE), 0.5)
    pixels[0, 0, LESION[0], LESION[1]] = 1.0
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[LESION] = True
    return Lesion(pixels, mask)


def _detector_head() -> MLPHead:
    """logits = (-GAIN z_0, +GAIN z_0): the diseased logit grows with embedding coordinate 0."""
    head = MLPHead(32, hidden_sizes=())
    with torch.no_grad():
        linear = head.net[0]
        linear.weight.zero_()
        linear.bias.zero_()
        linear.weight[1, 0], linear.weight[0, 0] = GAIN, -GAIN
    return head.eval()


def _zero_except_norm_scales(module: torch.nn.Module) -> None:
    for name, parameter in module.named_parameters():
        is_norm_scale = "norm" in name and name.endswith("weight")
        parameter.data.fill_(1.0 if is_norm_scale else 0.0)


@torch.no_grad()
def constructed_vit() -> tuple[ChestCLIP, MLPHead]:
    """A ViT that adds up the brightness of patches brighter than mid-grey, attending to them.

    Patch embedding: channel 3 = patch mean m of the normalised pixels (0 at mid-grey), channel
    4 = 1 - m; LayerNorm keeps m's sign along u = e3 - e5, which is orthogonal to the LayerNorm'd
    mid-grey patch and CLS tokens. Layer 0 is the identity (zero attention output and MLP).
    Layer 1: every head's CLS query is a constant, keys and values read u, so the CLS attends to
    bright patches and adds their u-values into channel 2; the projection reads channels 2 and 1
    (the CLS's own), so z_0 and the score grow with the bright patches' brightness.
    """
    model = tiny_clip("tiny-vit")
    backbone = model.image_encoder.backbone
    _zero_except_norm_scales(model.image_encoder)
    backbone.embeddings.cls_token[0, 0, 1] = 1.0
    projection = backbone.embeddings.patch_embeddings.projection
    channels_and_pixels = projection.weight[0].numel()
    projection.weight[3] = 1.0 / channels_and_pixels
    projection.weight[4] = -1.0 / channels_and_pixels
    projection.bias[4] = 1.0
    attention = backbone.layers[1].attention
    for first in range(0, attention.num_attention_heads * attention.head_dim, attention.head_dim):
        attention.q_proj.bias[first] = 1.0
        attention.k_proj.weight[first, 3], attention.k_proj.weight[first, 5] = 1.0, -1.0
        attention.v_proj.weight[first, 3], attention.v_proj.weight[first, 5] = VALUE, -VALUE
        attention.o_proj.weight[2, first] = 1.0
    model.image_projection.weight.zero_()
    model.image_projection.weight[0, 2] = model.image_projection.weight[1, 1] = 1.0
    return model, _detector_head()


@torch.no_grad()
def constructed_cnn() -> tuple[ChestCLIP, MLPHead]:
    """A ResNet whose feature channel 0 is the local brightness above mid-grey, channel 1 a
    constant 1: the stem convolution averages the (de-normalised) pixels, its BatchNorm bias
    shifts by -0.5, ReLU keeps the excess; residual branches are zero (identity blocks) and the
    last stage's shortcut passes both channels on. Pooled, projected to (h_0, h_1) and
    normalised, z_0 grows with the bright area."""
    model = tiny_clip("tiny-resnet")
    encoder = model.image_encoder
    _zero_except_norm_scales(encoder)
    stem = encoder.backbone.embedder.embedder
    std = torch.tensor(encoder.image_std)
    taps = stem.convolution.weight[0].numel()
    stem.convolution.weight[0] = (std / taps)[:, None, None]  # mean of (grey - mean_c)
    stem.normalization.bias[0] = float(np.mean(encoder.image_mean)) - 0.5
    stem.normalization.bias[1] = 1.0
    shortcut = encoder.backbone.encoder.stages[-1].layers[0].shortcut.convolution
    shortcut.weight[0, 0] = shortcut.weight[1, 1] = 1.0
    model.image_projection.weight.zero_()
    model.image_projection.weight[0, 0] = model.image_projection.weight[1, 1] = 1.0
    return model, _detector_head()


@pytest.fixture(scope="session")
def lesion() -> Lesion:
    return _lesion()


@pytest.fixture(scope="session")
def make_clip() -> Callable[..., ChestCLIP]:
    """``make_clip(image_encoder, attn_implementation="eager", seed=0)``: a random tiny CLIP."""
    return tiny_clip


@pytest.fixture(scope="module")
def vit_detector() -> tuple[ChestCLIP, MLPHead]:
    return constructed_vit()


@pytest.fixture(scope="module")
def cnn_detector() -> tuple[ChestCLIP, MLPHead]:
    return constructed_cnn()
