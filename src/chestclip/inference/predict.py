"""``chestclip predict``: P(diseased) per head for new X-ray files (PNG, JPEG, DICOM), the decision
at the validation-chosen threshold, the top ROI zones of a heat map, an overlay PNG and, when the
run has a training index, the nearest training reports as drafts.

:class:`Predictor` loads a run once and predicts one decoded image at a time (the web viewer uses
it); :func:`predict_files` runs it over files.

Heads that read report text are only used when the text they were trained on is available: with
``--indication`` the indication-only heads run; heads trained on findings never see a new
image's (unwritten) findings, so they are not offered.

A run with multi-label heads (``chestclip.inference.findings``) also gives every finding's
probability and its decision at the finding's validation threshold.

Every image first meets the run's trust policy (``chestclip.inference.trust``): an image unlike
the training images (the OOD guard) or of a view the heads never saw gets no probability and no
decision, only the reason, unless ``allow_ood`` asks for them (still flagged). Lung zones are
found per image on frontal films (``chestclip.explain.anatomy``); lateral films get none.
``runtime="onnx"`` scores with the run's ONNX export (``chestclip export --format onnx``); the
heat map, when one is asked for, still comes from PyTorch (it needs gradients).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from chestclip.data.limits import DEFAULT_MAX_PIXELS
from chestclip.data.readers import ImageReadError, read_xray_for_model
from chestclip.data.text import clean_text
from chestclip.errors import ChestClipError
from chestclip.evaluation.evaluate import validation_thresholds
from chestclip.explain.anatomy import Zones, image_zones
from chestclip.explain.overlay import overlay_caption, save_overlay
from chestclip.explain.registry import explain, methods_for
from chestclip.explain.roi import top_zones, zone_masses
from chestclip.explain.stage import Explainer, as_pixels, default_method
from chestclip.inference.findings import FindingHeads
from chestclip.inference.trust import TrustPolicy, Verdict
from chestclip.retrieval.index import EmbeddingIndex, nearest_reports
from chestclip.training.pretrain import read_training_data
from chestclip.utils.device import model_device
from chestclip.utils.io import claim_new_path
from chestclip.utils.run_layout import HEAD_FILE, RunLayout

if TYPE_CHECKING:
    from chestclip.export.onnx import OnnxScorer

POSITIVE, NEGATIVE = "diseased", "normal"
# Real indications are at most ~230 characters; the text encoder reads its first few hundred
# anyway. A longer one is refused before any tokenising (it would hold the model lock).
MAX_INDICATION_CHARS = 2000
RUNTIMES = ("eager", "onnx")


@dataclass
class Prediction:
    """One file's result; ``error`` is set (and nothing else) when the file could not be read."""

    file: str
    error: str | None = None
    probabilities: dict[str, float | None] = field(default_factory=dict)
    thresholds: dict[str, float | None] = field(default_factory=dict)
    decisions: dict[str, str | None] = field(default_factory=dict)
    trust: dict[str, Any] = field(default_factory=dict)  # Verdict.as_dict()
    zones: str | None = None  # "anatomy" | "template"; None: lateral, or refused
    top_zones: list[tuple[str, float]] = field(default_factory=list)
    overlay: str | None = None
    drafts: list[dict[str, Any]] = field(default_factory=list)
    method: str | None = None  # the heat-map method; None when no heat map was made
    # multi-label heads: head → finding → {probability, threshold, decision}; empty without
    findings: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [], {}) or k == "error"}


@dataclass
class ImagePrediction:
    """What :meth:`Predictor.predict` finds in one image."""

    probabilities: dict[str, float | None]  # head → P(diseased) (None: refused)
    thresholds: dict[str, float | None]  # head → validation-chosen threshold (None: not evaluated)
    decisions: dict[str, str | None]  # head → "diseased" / "normal" (None: no threshold, refused)
    explained_head: str  # whose score the heat map explains
    method: str | None  # None: no heat map asked for (ONNX scoring without a method)
    heatmap: np.ndarray | None  # float32 [S, S] in [0, 1]
    zone_masses: dict[str, float]  # zone → share of the map's mass (NaN for an empty map)
    drafts: list[dict[str, Any]]  # nearest distinct training reports, most similar first
    verdict: Verdict  # the OOD guard's and the view check's findings
    zones: Zones | None  # the zones the masses are shares of (None: lateral film, or refused)
    # multi-label heads: head → finding → {probability, threshold, decision} (empty: none, refused)
    findings: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def top_zones(self) -> list[tuple[str, float]]:
        return top_zones(self.zone_masses)


def reads_new_images(info: dict[str, Any], indication: bool) -> bool:
    """Image heads always; text-reading heads only when trained on the indication alone and an
    indication is given."""
    fields = info["text_fields"]
    return "image" in info["inputs"] and (
        fields is None or (indication and fields == ["indication"])
    )


def usable_heads(run: Path, with_indication: bool) -> list[str]:
    """The heads of ``run`` that can score a new image (given its indication, or not)."""
    layout = RunLayout(run)
    names = []
    for directory in layout.head_dirs():
        info = json.loads((directory / HEAD_FILE).read_text())
        if reads_new_images(info, with_indication):
            names.append(info["name"])
    if not names:
        raise ChestClipError(
            f"{run}: no image-reading head in {layout.heads.name}/; run `chestclip probe` first"
        )
    return names


class Predictor:
    """A run's CLIP, every head that can score a new image, the validation thresholds and the
    training index, loaded once. Thread-safe: images are scored one at a time (heat-map hooks
    live on the shared model)."""

    def __init__(
        self,
        run: Path,
        explainers: dict[str, Explainer],
        thresholds: dict[str, float],
        training_data: dict[str, Any],
        index: EmbeddingIndex | None,
        trust: TrustPolicy,
        onnx: OnnxScorer | None = None,
        findings: FindingHeads | None = None,
    ) -> None:
        self.run = run
        self.explainers = explainers
        self.thresholds = thresholds
        self.training_data = training_data
        self.index = index
        self.trust = trust
        self.onnx = onnx  # scores (not heat maps) come from it when given
        self.model = next(iter(explainers.values())).model
        self.findings = findings or FindingHeads({}, {})
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, run: str | Path, device: str | torch.device | None = None, runtime: str = "eager"
    ) -> Predictor:
        """Everything from ``run`` (no pickle: weights are safetensors, the rest JSON/CSV), the
        model on ``device`` (default: CUDA when available); ``runtime="onnx"`` also loads
        ``RUN/onnx`` to score with. A stale head is refused."""
        if runtime not in RUNTIMES:
            raise ChestClipError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        run = Path(run)
        if not run.is_dir():
            raise ChestClipError(f"{run}: run directory not found")
        explainers = Explainer.load_heads(run, usable_heads(run, with_indication=True), device)
        train_index = RunLayout(run).retrieval_index("train")
        index = EmbeddingIndex.load(train_index) if (train_index / "index.json").is_file() else None
        training_data = read_training_data(run)
        trust = TrustPolicy.load(run, (e.info for e in explainers.values()), training_data)
        onnx = None
        if runtime == "onnx":
            from chestclip.export.onnx import OnnxScorer

            onnx = OnnxScorer.load(run)
        findings = FindingHeads.load(run, next(iter(explainers.values())).device)
        thresholds = validation_thresholds(run)
        return cls(run, explainers, thresholds, training_data, index, trust, onnx, findings)

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @property
    def methods(self) -> list[str]:
        """Heat-map methods that apply to this model's image encoder."""
        return methods_for(self.model)

    @functools.cached_property
    def default_method(self) -> str:
        """Read once: every request would otherwise re-read the run's faithfulness.json."""
        return default_method(self.model, self.run)

    def heads_for(self, indication: str | None) -> list[str]:
        """The loaded heads that can score an image given (or not given) an indication."""
        names = [
            n for n, e in self.explainers.items() if reads_new_images(e.info, bool(indication))
        ]
        if not names:
            raise ChestClipError(
                f"{self.run}: every head needs an indication; give one (--indication)"
            )
        return names

    def read(self, path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """An X-ray file (at most ``max_pixels`` pixels) → uint8 [S, S], prepared as the
        training images were. Raises ImageReadError."""
        return read_xray_for_model(path, self.image_size, self.training_data["resize"], max_pixels)

    def predict(
        self,
        image: np.ndarray,
        indication: str | None = None,
        method: str | None = None,
        drafts: int = 3,
        allow_ood: bool = False,
        heatmap: bool | None = None,
    ) -> ImagePrediction:
        """Score ``image`` uint8 [S, S] with every usable head and explain one of them: the
        multimodal head's score when it runs (the paper's), else the image head's. An image the
        trust policy flags gets no probabilities, decisions, heat map or drafts unless
        ``allow_ood``. ``heatmap`` defaults to True with PyTorch scoring, and with ONNX scoring
        to whether a ``method`` was named (the heat map is PyTorch's cost, not ONNX's)."""
        if image.shape != (self.image_size, self.image_size):
            raise ValueError(f"image must be [{self.image_size}, {self.image_size}]: {image.shape}")
        if heatmap is None:
            heatmap = self.onnx is None or method is not None
        method = method or self.default_method
        if method not in self.methods:
            raise ChestClipError(
                f"heat-map method {method!r} does not apply to this model; "
                f"choose one of: {', '.join(self.methods)}"
            )
        if indication and len(indication) > MAX_INDICATION_CHARS:
            raise ChestClipError(
                f"indication of {len(indication):,} characters: at most "
                f"{MAX_INDICATION_CHARS:,} are read"
            )
        names = self.heads_for(indication)
        explainers = {name: self.explainers[name] for name in names}
        explained = next((name for name, e in explainers.items() if e.needs_text), names[0])
        thresholds = {name: self.thresholds.get(name) for name in names}
        pixels = as_pixels(image, model_device(self.model))
        with self._lock:
            embedding = self._image_embedding(pixels)  # [D]: the OOD guard and drafts read it
        verdict = self.trust.check(image, embedding, allow_ood)
        if verdict.refused:
            no_probability, no_decision = dict.fromkeys(names), dict.fromkeys(names)
            return ImagePrediction(
                no_probability,
                thresholds,
                no_decision,
                explained,
                method,
                None,
                {},
                [],
                verdict,
                None,
            )
        finding_heads = [
            name
            for name, (_, info) in self.findings.heads.items()
            if reads_new_images(info, bool(indication))
        ]
        reads_text = [e.needs_text for e in explainers.values()] + [
            "text" in self.findings.heads[name][1]["inputs"] for name in finding_heads
        ]
        cleaned = (  # outside the lock: the lock is for the model alone
            clean_text(indication, self.training_data["clean"])
            if indication and any(reads_text)
            else None
        )
        with self._lock:
            text = explainers[explained].text_embedding(cleaned, "none") if cleaned else None
            if self.onnx is not None:
                probabilities = self._onnx_scores(embedding, explainers, text)
            else:
                with torch.inference_mode():
                    probabilities = {
                        name: e.probability(pixels, text if e.needs_text else None)
                        for name, e in explainers.items()
                    }
            with torch.inference_mode():
                findings = self.findings.predict(
                    finding_heads, torch.from_numpy(embedding).to(pixels.device), text
                )
            scorer = explainers[explained]
            # the heat map needs gradients: outside inference mode
            heat = (
                explain(
                    self.model, pixels, scorer.score(text if scorer.needs_text else None), method
                )
                if heatmap
                else None
            )
        decisions = {
            name: None
            if thresholds[name] is None
            else (POSITIVE if probabilities[name] >= thresholds[name] else NEGATIVE)
            for name in names
        }
        found = (
            nearest_reports(self.index, embedding, drafts).to_dict("records")
            if self.index is not None and drafts
            else []
        )
        zones = image_zones(image) if verdict.frontal else None
        return ImagePrediction(
            probabilities,
            thresholds,
            decisions,
            explained,
            method if heat is not None else None,
            heat,
            zone_masses(heat, zones.masks) if heat is not None and zones else {},
            found,
            verdict,
            zones,
            findings,
        )

    def _image_embedding(self, pixels: torch.Tensor) -> np.ndarray:
        """The image's CLIP embedding [D]: from the ONNX graph when scoring with ONNX."""
        if self.onnx is not None:
            return self.onnx.image_embeddings(pixels.cpu().numpy())[0]
        with torch.inference_mode():
            return self.model.encode_image(pixels)[0].float().cpu().numpy()

    def _onnx_scores(
        self, embedding: np.ndarray, explainers: dict[str, Explainer], text: torch.Tensor | None
    ) -> dict[str, float]:
        """P(diseased) per head from the ONNX graphs, given the image embedding [D]."""
        probabilities = {}
        for name, explainer in explainers.items():
            features = embedding.reshape(1, -1)
            if explainer.needs_text:
                features = np.concatenate([features, text.cpu().numpy().reshape(1, -1)], axis=1)
            probabilities[name] = float(self.onnx.probabilities(name, features)[0])
        return probabilities


def predict_files(
    run: str | Path,
    files: Sequence[str | Path],
    indication: str | None = None,
    cam_dir: str | Path | None = None,
    method: str | None = None,
    drafts: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: str | torch.device | None = None,
    allow_ood: bool = False,
    runtime: str = "eager",
) -> Iterator[Prediction]:
    """Predict every file in turn (on ``device``, default CUDA when available); an unreadable
    file (or one of more than ``max_pixels`` pixels) yields a Prediction with ``error``; a
    flagged one (trust policy) no probabilities unless ``allow_ood``. With ``runtime="onnx"`` a
    heat map is made only when ``cam_dir`` or ``method`` asks."""
    predictor = Predictor.load(run, device, runtime)
    heatmap = None if cam_dir is None else True
    predictor.heads_for(indication)  # no head for this input: say so before reading any file
    for file in files:
        try:
            image = predictor.read(file, max_pixels)
        except ImageReadError as err:
            yield Prediction(str(file), error=str(err))
            continue
        found = predictor.predict(image, indication, method, drafts, allow_ood, heatmap)
        result = Prediction(
            str(file),
            probabilities=found.probabilities,
            thresholds=found.thresholds,
            decisions=found.decisions,
            trust=found.verdict.as_dict(),
            zones=found.zones.source if found.zones else None,
            top_zones=found.top_zones,
            drafts=found.drafts,
            method=found.method,
            findings=found.findings,
        )
        if cam_dir is not None and found.heatmap is not None:
            # never overwritten: a name taken (same file name in another folder, or an earlier
            # run's overlay) gets -2, -3, …
            path = claim_new_path(Path(cam_dir) / f"{Path(file).name}.{found.method}.png")
            caption = overlay_caption(
                found.probabilities[found.explained_head],
                POSITIVE,
                f"{found.method} ({found.explained_head} head)",
            )
            save_overlay(path, image, found.heatmap, caption, zones=found.zones)
            result.overlay = str(path)
        yield result
