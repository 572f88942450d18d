"""The CAM interface: score functions, the method base class, hooks and heat-map post-processing.

A :class:`CamMethod` turns ``(model, pixels [1, 1, H, W], score_fn)`` into a heat map ``[H, W]`` in
[0, 1]. The base class owns everything methods share (input checks, gradients enabled, hook
registration and removal, upsampling, normalisation); each method only computes its map at the
encoder's own resolution (token grid for ViTs, last feature map for CNNs) in :meth:`grid_map`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chestclip.models import ChestCLIP, ImageEncoder
from chestclip.models.heads import HEAD_INPUTS

ScoreFunction = Callable[[Tensor], Tensor]  # pixels [B, 1, H, W] in [0, 1] -> score [B]


def head_score(
    model: ChestCLIP,
    head: nn.Module,
    kind: str,
    text_embedding: Tensor | None = None,
    target: int = 1,
    probability: bool = False,
) -> ScoreFunction:
    """The score a heat map explains: the log-odds of class ``target`` (1 = diseased),
    ``log P(target) / (1 − P(target))`` = ``logit[1] − logit[0]`` for the two-class heads.

    The decision ``P(diseased) ≥ threshold`` depends on the logits only through that difference:
    the diseased logit alone would credit evidence that raises both logits (no change to the
    decision) and miss evidence that lowers the normal logit. Every method explains this one
    score, so the choice is made here once.

    ``kind`` is the head's ``head.json`` kind: ``image`` heads read ``encode_image(pixels)``;
    ``multimodal`` heads read ``[image ⊕ text]`` with ``text_embedding`` ([D] or [1, D], the
    study's unit-norm text embedding) held fixed (detached), so only the image is explained.
    Text-only heads do not see the image and are refused. ``probability=True`` returns the
    softmax probability of ``target`` instead (what the faithfulness curves record).
    """
    if kind not in HEAD_INPUTS:
        raise ValueError(f"unknown head kind {kind!r}: expected one of {list(HEAD_INPUTS)}")
    if "image" not in HEAD_INPUTS[kind]:
        raise ValueError(f"a {kind!r} head does not see the image: there is nothing to explain")
    text = None
    if "text" in HEAD_INPUTS[kind]:
        if text_embedding is None:
            raise ValueError(f"a {kind!r} head needs the study's text_embedding")
        text = text_embedding.detach().reshape(1, -1)  # [1, D]

    def score(pixels: Tensor) -> Tensor:
        if model.training or head.training:
            raise ValueError("call model.eval() and head.eval() first: explanations need eval mode")
        features = model.encode_image(pixels)  # [B, D]
        if text is not None:
            batch_text = text.to(features.device, features.dtype).expand(len(features), -1)
            features = torch.cat([features, batch_text], dim=1)  # [B, 2D]
        expected = getattr(head, "in_dim", features.shape[1])
        if features.shape[1] != expected:
            raise ValueError(
                f"the {kind!r} head takes {expected} features, the model gives {features.shape[1]}"
            )
        logits = head(features)  # [B, C]
        if not 0 <= target < logits.shape[1]:
            raise ValueError(f"target class {target} out of range for {logits.shape[1]} classes")
        if probability:
            return logits.softmax(dim=-1)[:, target]
        others = torch.cat([logits[:, :target], logits[:, target + 1 :]], dim=1)  # [B, C - 1]
        return logits[:, target] - others.logsumexp(dim=1)

    return score


@dataclass(frozen=True)
class ViTLayout:
    """Where a transformers ViT family keeps its blocks, and in each block the self-attention
    module and the LayerNorm applied before it (dotted module paths)."""

    blocks: str
    attention: str
    norm_before: str


VIT_LAYOUTS = (
    ViTLayout("layers", "attention", "layernorm_before"),  # ViT, DeiT (transformers 5.x)
    ViTLayout("encoder.layers", "self_attn", "layer_norm1"),  # CLIPVisionModel, OpenAI-style CLIPs
)


def _submodule(module: nn.Module, path: str) -> nn.Module | None:
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None


def vit_layout(encoder: ImageEncoder) -> tuple[nn.ModuleList, ViTLayout] | None:
    """The blocks of a ViT-style encoder (CLS token, patch grid) and their layout; None for CNNs
    and for transformers whose layout is not in :data:`VIT_LAYOUTS`."""
    if not encoder.uses_cls_token or encoder.token_grid is None:
        return None
    for layout in VIT_LAYOUTS:
        blocks = _submodule(encoder.backbone, layout.blocks)
        if (
            isinstance(blocks, nn.ModuleList)
            and len(blocks) > 0
            and all(
                _submodule(block, layout.attention) is not None
                and _submodule(block, layout.norm_before) is not None
                for block in blocks
            )
        ):
            return blocks, layout
    return None


def is_vit(encoder: ImageEncoder) -> bool:
    """A ViT-style encoder whose attention blocks the ViT methods know how to hook."""
    return vit_layout(encoder) is not None


def attention_modules(encoder: ImageEncoder) -> list[nn.Module]:
    """Each ViT block's self-attention module, in forward order."""
    blocks, layout = _require_vit(encoder)
    return [block.get_submodule(layout.attention) for block in blocks]


def norms_before_attention(encoder: ImageEncoder) -> list[nn.Module]:
    """Each ViT block's LayerNorm before its self-attention, in forward order."""
    blocks, layout = _require_vit(encoder)
    return [block.get_submodule(layout.norm_before) for block in blocks]


def _require_vit(encoder: ImageEncoder) -> tuple[nn.ModuleList, ViTLayout]:
    found = vit_layout(encoder)
    if found is None:
        raise ValueError(f"a {type(encoder.backbone).__name__} image encoder is not a known ViT")
    return found


def cnn_stages(encoder: ImageEncoder) -> nn.ModuleList | None:
    """The convolutional stages (``backbone.encoder.stages``: ResNet, ConvNeXt...), else None."""
    stages = getattr(getattr(encoder.backbone, "encoder", None), "stages", None)
    if encoder.uses_cls_token or not isinstance(stages, nn.ModuleList) or len(stages) == 0:
        return None
    return stages


def encoder_blocks(encoder: ImageEncoder) -> nn.ModuleList:
    """The image encoder's blocks in forward order: ViT layers or CNN stages."""
    found = vit_layout(encoder)
    if found is not None:
        return found[0]
    stages = cnn_stages(encoder)
    if stages is None:
        raise ValueError(
            f"cannot find the blocks of a {type(encoder.backbone).__name__} image encoder "
            "(expected ViT blocks or CNN `encoder.stages`)"
        )
    return stages


def patch_tokens(tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """The patch part ``[..., rows * cols]`` of a token axis ``[..., N]`` (CLS and any other
    prefix tokens dropped: the patches are the last ``rows * cols`` tokens, row-major)."""
    rows, cols = grid
    return tokens[..., tokens.shape[-1] - rows * cols :]


@contextlib.contextmanager
def eager_attention(encoder: ImageEncoder) -> Iterator[None]:
    """Run the ViT with eager attention (the only one that returns attention probabilities),
    restoring the previous implementation afterwards. Not thread-safe: it switches the model."""
    backbone = encoder.backbone
    previous = backbone.config._attn_implementation
    if previous == "eager":
        yield
        return
    backbone.set_attn_implementation("eager")
    try:
        if backbone.config._attn_implementation != "eager":
            raise ValueError(
                f"cannot switch this {type(backbone).__name__} to eager attention: load the "
                'model with attn_implementation="eager" to explain it with attention maps'
            )
        yield
    finally:
        backbone.set_attn_implementation(previous)


def attention_probabilities(output: tuple[Tensor, Tensor | None]) -> Tensor:
    """From a transformers 5.x attention module's output ``(hidden, probabilities)``: the
    softmax probabilities ``[B, heads, N, N]``, still in the autograd graph.

    With eager attention (``eager_attention_forward``) the returned probabilities are the very
    tensor multiplied with the values, so a forward hook on the attention module yields a graph
    node to differentiate against, for any score function; ``output_attentions=True`` would need
    the flag threaded through the caller's forward. SDPA and flash kernels return None here.
    """
    probabilities = output[1]
    if probabilities is None:
        raise ValueError(
            "the attention module returned no probabilities: load the model with "
            'attn_implementation="eager"'
        )
    return probabilities


def outputs_and_gradients(
    modules: Sequence[nn.Module],
    select: Callable[[object], Tensor],
    pixels: Tensor,
    score_fn: ScoreFunction,
) -> tuple[list[Tensor], list[Tensor]]:
    """Run ``score_fn(pixels)`` once, recording ``select(output)`` of each module's forward, and
    return those tensors and the gradients of the score with respect to them (both detached).

    Hooks are always removed; errors propagate. Gradients go only to the recorded tensors
    (``torch.autograd.grad``), never into parameters' ``.grad``.
    """
    records: list[Tensor] = []

    def record(_module: nn.Module, _inputs: object, output: object) -> None:
        records.append(select(output))

    handles = [module.register_forward_hook(record) for module in modules]
    try:
        score = score_fn(pixels)  # [1]
    finally:
        for handle in handles:
            handle.remove()
    if score.shape != (1,):
        raise ValueError(f"score_fn must return one score per image, got {tuple(score.shape)}")
    if len(records) != len(modules):
        raise ValueError(
            f"expected one forward pass through {len(modules)} hooked module(s), recorded "
            f"{len(records)}: score_fn must encode the image exactly once"
        )
    gradients = torch.autograd.grad(score.sum(), records, allow_unused=True)
    if any(gradient is None for gradient in gradients):
        raise ValueError("the score does not depend on the explained layer: nothing to explain")
    return [r.detach() for r in records], [g.detach() for g in gradients]


def normalise(heatmap: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]. A flat map has no localisation to stretch: it becomes all zeros when
    it is zero (no evidence anywhere, e.g. every ReLU'd value negative) and all ones when it is
    positive (evidence spread evenly)."""
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if not np.isfinite(heatmap).all():
        raise ValueError("the heat map has non-finite values (NaN or inf)")
    low, high = float(heatmap.min()), float(heatmap.max())
    if high - low > 1e-6 * max(abs(high), abs(low)):
        return (heatmap - low) / (high - low)
    return np.full_like(heatmap, 1.0 if high > 0 else 0.0)


def to_heatmap(grid_map: Tensor, size: tuple[int, int]) -> np.ndarray:
    """A token-grid or feature-map map ``[rows, cols]`` → float32 ``[H, W]`` in [0, 1]: bilinear
    upsampling to the image size, then :func:`normalise`."""
    upsampled = F.interpolate(
        grid_map.detach().float()[None, None], size=size, mode="bilinear", align_corners=False
    )[0, 0]  # [H, W]
    return normalise(upsampled.cpu().numpy())


class CamMethod(ABC):
    """One explanation method. Subclasses set ``name``/``requirement`` and implement
    :meth:`applies_to` and :meth:`grid_map`."""

    name: ClassVar[str]
    requirement: ClassVar[str]  # what the encoder must be, for the error message

    @abstractmethod
    def applies_to(self, encoder: ImageEncoder) -> bool:
        """Whether this method can explain ``encoder``."""

    @abstractmethod
    def grid_map(self, model: ChestCLIP, pixels: Tensor, score_fn: ScoreFunction) -> Tensor:
        """The raw non-negative map ``[rows, cols]`` at the encoder's resolution."""

    def __call__(self, model: ChestCLIP, pixels: Tensor, score_fn: ScoreFunction) -> np.ndarray:
        """``pixels`` [1, 1, H, W] in [0, 1] → heat map float32 [H, W] in [0, 1]."""
        if pixels.ndim != 4 or pixels.shape[:2] != (1, 1):
            raise ValueError(f"explain one grey image [1, 1, H, W], got {tuple(pixels.shape)}")
        encoder = model.image_encoder
        if not self.applies_to(encoder):
            raise ValueError(
                f"{self.name} needs {self.requirement}; this image encoder is a "
                f"{type(encoder.backbone).__name__}"
            )
        if model.training:
            raise ValueError("call model.eval() first: explanations need eval mode")
        parameter = next(model.parameters())
        # Gradients reach the hooked activations even when every parameter is frozen.
        pixels = pixels.detach().to(parameter.device, parameter.dtype).requires_grad_(True)
        with torch.enable_grad():
            grid_map = self.grid_map(model, pixels, score_fn)
        return to_heatmap(grid_map, tuple(pixels.shape[-2:]))


class AttentionCamMethod(CamMethod):
    """A method that reads a ViT's attention layers."""

    requirement = "a ViT-style encoder (CLS token, attention layers)"

    def applies_to(self, encoder: ImageEncoder) -> bool:
        return is_vit(encoder)
