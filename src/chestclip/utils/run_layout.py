"""The run directory: where every stage reads and writes, and the fingerprints that tie heads to
the features they were trained on. Stages ask a :class:`RunLayout` for paths; nothing else joins
run paths from string literals.

::

    RUN/config.yaml, env.json          the resolved config and versions (pretrain)
    RUN/prepared/                      the prepared dataset (`chestclip run` only)
    RUN/clip/                          the CLIP: model.safetensors, config.json, tokenizer/,
                                       data.json, metrics.csv, weights.sha256.json (the cache)
    RUN/checkpoints/, tokenizer/, logs/   pre-training state (resume)
    RUN/features/                      cached embeddings per split, keyed to the features
    RUN/heads/<name>/                  head.safetensors + head.json (with its fingerprint)
    RUN/heads/findings/<name>/         the same for a multi-label head (finding names in head.json)
    RUN/baselines/image-finetuned/     the fine-tuned image baseline (with its fingerprint)
    RUN/eval/, plots/, explain/, zeroshot/, retrieval/index-<split>/
    RUN/report.html, MODEL_CARD.md
    RUN/stages/<stage>.json            `chestclip run`'s record of each stage
    SWEEP/trials/NNNN/                 a sweep directory: one run per trial

A head is *stale* when the CLIP weights (content hash) or the prepared dataset it was trained on
are not the run's current ones: scoring it would read features it never saw.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chestclip.errors import ChestClipError
from chestclip.utils.io import atomic_write_json

HEAD_FILE, BASELINE_FILE = "head.json", "info.json"
_HASH_CHUNK = 2**24


class StaleArtefactError(ChestClipError):
    """A head or baseline trained on other CLIP weights or another prepared dataset."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def prepared_identity(prepared: str | os.PathLike) -> str:
    """A prepared dataset's identity: the hash of its summary.json (configuration, counts, skips
    and creation time), so a re-prepared dataset is a new one even at the same path."""
    summary = Path(prepared) / "summary.json"
    try:
        return hashlib.sha256(summary.read_bytes()).hexdigest()
    except OSError as error:
        raise ChestClipError(f"{summary}: cannot read ({error.strerror})") from None


class RunLayout:
    """Every path of one run directory (``root``), and its fingerprints."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunLayout({str(self.root)!r})"

    # written by pretrain
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def env(self) -> Path:
        return self.root / "env.json"

    @property
    def clip(self) -> Path:
        """RUN/clip; in a folder exported for the Hub (``chestclip export --format hf``) the
        CLIP's files lie at the top, where ``from_pretrained`` looks for them."""
        from chestclip.models.io import WEIGHTS_NAME  # the saved model's format is models.io's

        nested = self.root / "clip"
        if not nested.is_dir() and (self.root / WEIGHTS_NAME).is_file():
            return self.root
        return nested

    @property
    def clip_weights(self) -> Path:
        from chestclip.models.io import WEIGHTS_NAME

        return self.clip / WEIGHTS_NAME

    @property
    def training_data(self) -> Path:
        """How the CLIP's inputs were prepared (new inputs must match)."""
        return self.clip / "data.json"

    @property
    def clip_metrics(self) -> Path:
        return self.clip / "metrics.csv"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def pretrain_history(self) -> Path:
        """One row per pre-training epoch, kept with the checkpoints (a resumed run goes on)."""
        return self.checkpoints / "history.csv"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def prepared(self) -> Path:
        """Where `chestclip run` prepares the dataset."""
        return self.root / "prepared"

    # heads and baselines
    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def heads(self) -> Path:
        return self.root / "heads"

    def head(self, name: str) -> Path:
        return self.heads / name

    def head_dirs(self) -> list[Path]:
        """Every saved head, by name."""
        return sorted(path.parent for path in self.heads.glob(f"*/{HEAD_FILE}"))

    # multi-label heads, one level down so that ``head_dirs`` lists the binary heads only
    @property
    def finding_heads(self) -> Path:
        return self.heads / "findings"

    def finding_head(self, name: str) -> Path:
        return self.finding_heads / name

    def finding_head_dirs(self) -> list[Path]:
        """Every saved multi-label head, by name."""
        return sorted(path.parent for path in self.finding_heads.glob(f"*/{HEAD_FILE}"))

    @property
    def baselines(self) -> Path:
        return self.root / "baselines"

    def baseline(self, name: str) -> Path:
        return self.baselines / name

    # evaluation and the later stages
    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def metrics(self) -> Path:
        return self.eval / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.eval / "predictions.csv"

    @property
    def findings_metrics(self) -> Path:
        """Per-finding metrics of the multi-label heads (``chestclip.evaluation.findings``)."""
        return self.eval / "findings.json"

    @property
    def findings_predictions(self) -> Path:
        return self.eval / "findings_predictions.csv"

    @property
    def ood(self) -> Path:
        """The OOD guard evaluate fits on the training and validation splits."""
        return self.root / "ood"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    def plot(self, name: str) -> Path:
        return self.plots / f"{name}.png"

    @property
    def explain(self) -> Path:
        return self.root / "explain"

    @property
    def faithfulness(self) -> Path:
        """The explanation stage's summary (``chestclip explain`` batch mode)."""
        return self.explain / "faithfulness.json"

    @property
    def zeroshot(self) -> Path:
        return self.root / "zeroshot"

    @property
    def zeroshot_metrics(self) -> Path:
        return self.zeroshot / "metrics.json"

    @property
    def retrieval(self) -> Path:
        return self.root / "retrieval"

    @property
    def retrieval_metrics(self) -> Path:
        return self.retrieval / "metrics.json"

    def retrieval_index(self, split: str) -> Path:
        return self.retrieval / f"index-{split}"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def model_card(self) -> Path:
        return self.root / "MODEL_CARD.md"

    # exports
    @property
    def hub(self) -> Path:
        """The Hugging Face Hub folder ``chestclip export`` writes by default."""
        return self.root / "hub"

    @property
    def onnx(self) -> Path:
        return self.root / "onnx"

    # orchestration
    @property
    def stages(self) -> Path:
        return self.root / "stages"

    def stage_record(self, stage: str) -> Path:
        return self.stages / f"{stage}.json"

    @property
    def trials(self) -> Path:
        return self.root / "trials"

    def trial(self, number: int) -> Path:
        return self.trials / f"{number:04d}"

    def outputs(self, stage: str) -> tuple[Path, ...]:
        """What a `chestclip run` stage writes beyond the run's core (removed when it is
        switched off, so the report never shows results of an older config)."""
        return {
            "baseline": (self.baselines,),
            "evaluate": (self.eval, self.ood, self.plot("findings_auc")),
            "explain": (self.explain,),
            "zeroshot": (self.zeroshot, self.plot("zeroshot_auc")),
            "retrieve": (self.retrieval, self.plot("retrieval_recall")),
            "report": (self.report, self.model_card),
        }.get(stage, ())

    # fingerprints
    @property
    def _clip_hash_cache(self) -> Path:
        return self.clip / "weights.sha256.json"

    def clip_sha256(self) -> str:
        """The content hash of the CLIP weights, computed once and cached beside them (keyed to
        the file's size and modification time, so replaced weights are hashed again)."""
        weights = self.clip_weights
        try:
            stat = weights.stat()
        except FileNotFoundError:
            raise ChestClipError(f"{weights}: missing; run `chestclip pretrain` first") from None
        key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        try:
            cached = json.loads(self._clip_hash_cache.read_text())
            if {k: cached.get(k) for k in key} == key:
                return cached["sha256"]
        except (OSError, ValueError, KeyError):
            pass
        digest = file_sha256(weights)
        # a read-only run (served from a shared volume) hashes again next time
        with contextlib.suppress(OSError):
            atomic_write_json(self._clip_hash_cache, {**key, "sha256": digest})
        return digest

    def features_fingerprint(
        self, prepared: str | os.PathLike, text_fields: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """What a head's inputs depend on: the CLIP weights, the prepared dataset, and the report
        sections its text features read (None: no text)."""
        return {
            "clip_sha256": self.clip_sha256(),
            "data_sha256": prepared_identity(prepared),
            "text_fields": list(text_fields) if text_fields is not None else None,
        }

    def check_head(
        self, directory: Path, info: dict[str, Any], prepared: str | os.PathLike | None = None
    ) -> None:
        """Refuse a stale head: trained on other CLIP weights (or, given ``prepared``, on another
        prepared dataset) than the run's current ones."""
        recorded = info.get("fingerprint")
        rerun = f"rerun `chestclip probe --run {self.root}` (or `chestclip run`)"
        if not recorded:
            raise StaleArtefactError(
                f"{directory / HEAD_FILE}: records no features fingerprint (an older chestclip); "
                + rerun
            )
        if recorded["clip_sha256"] != self.clip_sha256():
            raise StaleArtefactError(
                f"{directory}: stale head, trained on other CLIP weights than "
                f"{self.clip_weights}; {rerun}"
            )
        if prepared is not None and recorded["data_sha256"] != prepared_identity(prepared):
            raise StaleArtefactError(
                f"{directory}: stale head, trained on another prepared dataset than {prepared}; "
                + rerun
            )

    def check_baseline(
        self, directory: Path, info: dict[str, Any], prepared: str | os.PathLike
    ) -> None:
        """Refuse a fine-tuned baseline trained on another prepared dataset than ``prepared``."""
        recorded = (info.get("fingerprint") or {}).get("data_sha256")
        if recorded != prepared_identity(prepared):
            raise StaleArtefactError(
                f"{directory}: stale baseline, trained on another prepared dataset than "
                f"{prepared} (or by an older chestclip); rerun `chestclip baseline image`"
            )
