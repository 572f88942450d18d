"""ONNX graphs of a run's image path, for fast CPU inference: ``chestclip export --format onnx
[--quantize int8]`` writes them, ``chestclip predict/serve --runtime onnx`` runs them.

``RUN/onnx/``::

    image_encoder.onnx     pixels [B, 1, S, S] in [0, 1] → unit-norm image embeddings [B, D]
                           (dynamically int8-quantised by onnxruntime with --quantize int8)
    heads/<name>.onnx      features [B, F] → P(diseased) [B], one per head that reads the image
                           (multimodal heads: F = image ⊕ text embedding, the text from PyTorch)
    manifest.json          heads, shapes, quantisation, the measured error against eager PyTorch,
                           and the sha256 of the weights exported (a stale export is refused)

The text encoder and the heat map stay in PyTorch: they need the tokenizer and gradients.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import chestclip
from chestclip.errors import ChestClipError
from chestclip.models import ChestCLIP, load_clip, resolve_clip_dir
from chestclip.models.heads import HEAD_INPUTS
from chestclip.models.io import WEIGHTS_NAME
from chestclip.training.probe import load_head
from chestclip.utils.extras import require_extra
from chestclip.utils.io import atomic_directory
from chestclip.utils.run_layout import RunLayout, file_sha256

MANIFEST = "manifest.json"
IMAGE_ENCODER = "image_encoder.onnx"
OPSET = 17
# float32 ONNX vs eager PyTorch: largest |Δ P(diseased)| accepted at export (measured: ~1e-6)
TOLERANCE = 1e-4
CHECK_IMAGES = 8


class _ImageEmbedding(nn.Module):
    def __init__(self, model: ChestCLIP):
        super().__init__()
        self.model = model

    def forward(self, pixels: Tensor) -> Tensor:
        return self.model.encode_image(pixels)  # [B, D]


class _HeadProbability(nn.Module):
    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head

    def forward(self, features: Tensor) -> Tensor:
        return self.head(features).softmax(dim=-1)[:, 1]  # [B]


@dataclass(frozen=True)
class OnnxExport:
    directory: Path
    heads: list[str]
    quantize: str | None
    max_abs_error: float  # largest |Δ P(diseased)| vs eager on the check images, every head
    checked_images: int


def image_heads(run: Path) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
    """Every head of ``run`` that reads the image, with its head.json."""
    heads = {}
    layout = RunLayout(run)
    for directory in layout.head_dirs():
        head, info = load_head(directory)
        if "image" in info["inputs"]:
            heads[info["name"]] = (head, info)
    if not heads:
        raise ChestClipError(
            f"{run}: no image-reading head in {layout.heads.name}/; run `chestclip probe`"
        )
    return heads


def weight_fingerprints(run: Path, heads: list[str]) -> dict[str, str]:
    """sha256 of the CLIP's and each head's weights: what an export is valid for."""
    fingerprints = {"clip": file_sha256(resolve_clip_dir(run) / WEIGHTS_NAME)}
    for name in heads:
        fingerprints[name] = file_sha256(RunLayout(run).head(name) / "head.safetensors")
    return fingerprints


def check_pixels(size: int, count: int = CHECK_IMAGES) -> Tensor:
    """Fixed images [count, 1, S, S]: uniform noise and smooth gradients, deterministic."""
    noise = torch.rand(count // 2, 1, size, size, generator=torch.Generator().manual_seed(0))
    ramp = torch.linspace(0, 1, size)
    smooth = torch.stack([(ramp[:, None] * a + ramp[None, :] * (1 - a)) for a in
                          torch.linspace(0, 1, count - len(noise))])[:, None]  # fmt: skip
    return torch.cat([noise, smooth]).float()


def export_onnx(
    run: str | Path, out: str | Path | None = None, quantize: str | None = None
) -> OnnxExport:
    """Export ``run``'s image encoder and image-reading heads (layout in the module docstring),
    check them against eager PyTorch on fixed images, and write them atomically."""
    require_extra("onnx", "chestclip export --format onnx")
    if quantize not in (None, "int8"):
        raise ChestClipError(f"--quantize {quantize!r}: only int8 is supported")
    run = Path(run)
    out = Path(out) if out is not None else RunLayout(run).onnx
    model, _ = load_clip(run)
    heads = image_heads(run)
    size, dim = model.config.image_size, model.config.embed_dim
    with atomic_directory(out) as tmp:
        _export(
            _ImageEmbedding(model),
            torch.zeros(1, 1, size, size),
            tmp / IMAGE_ENCODER,
            "pixels",
            "image_embeds",
        )
        if quantize == "int8":
            _quantize_int8(tmp / IMAGE_ENCODER)
        (tmp / "heads").mkdir()
        for name, (head, info) in heads.items():
            _export(
                _HeadProbability(head),
                torch.zeros(1, info["in_dim"]),
                tmp / "heads" / f"{name}.onnx",
                "features",
                "probability",
            )
        error = _max_abs_error(model, heads, OnnxScorer(tmp), dim)
        if quantize is None and error > TOLERANCE:
            raise ChestClipError(
                f"{run}: the ONNX export differs from PyTorch by {error:.2g} in P(diseased) "
                f"(tolerance {TOLERANCE:g}); not written"
            )
        manifest = {
            "chestclip": chestclip.__version__,
            "torch": torch.__version__,
            "opset": OPSET,
            "quantize": quantize,
            "image_size": size,
            "embed_dim": dim,
            "heads": {
                name: {"in_dim": info["in_dim"], "inputs": info["inputs"]}
                for name, (_, info) in heads.items()
            },
            "weights_sha256": weight_fingerprints(run, list(heads)),
            "max_abs_error": error,
            "checked_images": CHECK_IMAGES,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return OnnxExport(out, list(heads), quantize, error, CHECK_IMAGES)


def _export(
    module: nn.Module, example: Tensor, path: Path, input_name: str, output_name: str
) -> None:
    # The TorchScript-based exporter: the dynamo one needs onnxscript, one more dependency.
    # Its TracerWarnings flag the models' input-shape checks, constant for a fixed image size.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module.eval(),
            (example,),
            str(path),
            dynamo=False,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=OPSET,
        )


def _quantize_int8(path: Path) -> None:
    """Dynamic int8 quantisation (weights int8, activations quantised on the fly), in place."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    prepared, quantized = path.with_suffix(".pre.onnx"), path.with_suffix(".int8.onnx")
    quant_pre_process(str(path), str(prepared))  # shape inference and graph optimisation first
    quantize_dynamic(str(prepared), str(quantized), weight_type=QuantType.QInt8)
    prepared.unlink()
    quantized.replace(path)


@torch.no_grad()
def _max_abs_error(model: ChestCLIP, heads: dict, scorer: OnnxScorer, dim: int) -> float:
    pixels = check_pixels(model.config.image_size)
    text = torch.nn.functional.normalize(
        torch.randn(len(pixels), dim, generator=torch.Generator().manual_seed(1)), dim=-1
    )
    eager_image = model.encode_image(pixels)
    onnx_image = torch.from_numpy(scorer.image_embeddings(pixels.numpy()))
    worst = 0.0
    for name, (head, info) in heads.items():
        parts = {"image": (eager_image, onnx_image), "text": (text, text)}
        eager = torch.cat([parts[p][0] for p in HEAD_INPUTS[info["kind"]]], dim=1)
        exported = torch.cat([parts[p][1] for p in HEAD_INPUTS[info["kind"]]], dim=1)
        expected = head(eager).softmax(dim=-1)[:, 1]
        found = torch.from_numpy(scorer.probabilities(name, exported.numpy()))
        worst = max(worst, float((expected - found).abs().max()))
    return worst


class OnnxScorer:
    """The exported graphs in onnxruntime sessions (CPU), using as many threads as PyTorch is
    set to unless told otherwise. Thread-safe."""

    def __init__(self, directory: str | Path, threads: int | None = None):
        require_extra("onnx", "--runtime onnx")
        import onnxruntime

        self.directory = Path(directory)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        providers = ["CPUExecutionProvider"]

        def session(path: Path) -> Any:
            return onnxruntime.InferenceSession(str(path), options, providers=providers)

        self.image_session = session(self.directory / IMAGE_ENCODER)
        self.head_sessions = {
            path.stem: session(path) for path in sorted((self.directory / "heads").glob("*.onnx"))
        }

    @classmethod
    def load(cls, run: str | Path, threads: int | None = None) -> OnnxScorer:
        """``RUN/onnx``, refused with one line when missing or exported from other weights."""
        run, directory = Path(run), RunLayout(run).onnx
        manifest_file = directory / MANIFEST
        if not manifest_file.is_file():
            raise ChestClipError(
                f"{run}: no {directory.name}/{MANIFEST}; run `chestclip export --run {run} "
                "--format onnx`"
            )
        manifest = json.loads(manifest_file.read_text())
        if weight_fingerprints(run, list(manifest["heads"])) != manifest["weights_sha256"]:
            raise ChestClipError(
                f"{directory}: exported from other weights than the run's (retrained or "
                f"re-probed since); rerun `chestclip export --run {run} --format onnx`"
            )
        return cls(directory, threads)

    def image_embeddings(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels`` float32 [B, 1, S, S] in [0, 1] → unit-norm embeddings float32 [B, D]."""
        return self.image_session.run(None, {"pixels": np.ascontiguousarray(pixels, np.float32)})[0]

    def probabilities(self, head: str, features: np.ndarray) -> np.ndarray:
        """``features`` float32 [B, F] (the head's input) → P(diseased) float32 [B]."""
        if head not in self.head_sessions:
            raise ChestClipError(
                f"{self.directory}: no ONNX graph for head {head!r}; rerun `chestclip export`"
            )
        features = np.ascontiguousarray(features, np.float32)
        return self.head_sessions[head].run(None, {"features": features})[0]
