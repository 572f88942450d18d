"""Typed, validated configuration. Flow: defaults ← packaged YAML ← user YAML ← ``--set`` overrides.

Each stage has its own section; the resolved config is saved beside every output.
"""

from __future__ import annotations

import copy
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from chestclip.errors import ChestClipError
from chestclip.utils.io import atomic_write_text


class ConfigError(ChestClipError):
    """A config file or override that does not validate; the message is one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# chestclip.data.records.SECTIONS (importing chestclip.data here would be circular)
TextField = Literal["indication", "comparison", "findings", "impression"]


class ManifestConfig(_Section):
    """Column names of a manifest CSV (``chestclip prepare --source export.csv``); see
    ``chestclip.data.manifest``. ``None``: the column is absent."""

    image: str = "image"
    patient_id: str | None = "patient_id"
    study_id: str | None = "study_id"
    report: str | None = "report"  # whole report text, split into sections by its headers
    indication: str | None = "indication"
    findings: str | None = "findings"
    impression: str | None = "impression"
    comparison: str | None = "comparison"
    view: str | None = "view"
    label: str | None = "label"  # 0 normal / 1 diseased; else derived from the findings
    split: str | None = "split"  # train/val/test, used with ``split: official``
    finding_columns: tuple[str, ...] | None = None  # None: the CheXpert label names present


class PrepareConfig(_Section):
    """``chestclip prepare``: how reports and images become a training-ready dataset."""

    image_size: int = Field(224, ge=16, le=4096)
    views: Literal["all", "frontal"] = "all"
    text_fields: tuple[TextField, ...] = ("indication", "findings")
    clean: Literal["safe", "paper", "none"] = "safe"
    split: tuple[float, float, float] | Literal["official"] = (0.70, 0.15, 0.15)
    seed: int = 0
    images: bool = True
    resize: Literal["pad", "stretch"] = "pad"
    workers: int = Field(default_factory=lambda: min(8, os.cpu_count() or 1), ge=1)
    # keep what a truncated archive or an empty result leaves, listed in summary.json["partial"]
    allow_partial: bool = False
    # multi-label findings: the MIMIC-CXR labeler file, and what uncertain (−1) and missing
    # (blank) labels become: ``ignore`` (masked in the loss and the metrics), 0 or 1
    labeler: Literal["chexpert", "negbio"] = "chexpert"
    uncertain: Literal["ignore", "zeros", "ones"] = "ignore"
    missing: Literal["ignore", "zeros", "ones"] = "zeros"
    manifest: ManifestConfig = ManifestConfig()
    cache: Literal["auto", "array", "shards"] = "auto"  # auto: shards above SHARDS_ABOVE_BYTES
    shard_size: int = Field(1000, ge=1)  # images per shard

    @field_validator("text_fields", mode="before")
    @classmethod
    def _split_comma_list(cls, value: Any) -> Any:
        return (
            tuple(v.strip() for v in value.split(",") if v.strip())
            if isinstance(value, str)
            else value
        )

    @field_validator("split", mode="before")
    @classmethod
    def _split_numbers(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() != "official":
            return tuple(float(v) for v in value.split(","))
        return value.strip() if isinstance(value, str) else value

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, value: tuple[float, float, float] | str) -> Any:
        if isinstance(value, tuple) and (min(value) < 0 or abs(sum(value) - 1) > 1e-6):
            raise ValueError(f"train,val,test fractions must be >= 0 and sum to 1, got {value}")
        return value


class ModelConfig(_Section):
    """The CLIP model (``chestclip.models.ChestCLIPConfig`` without what the data decides)."""

    image_encoder: str = "google/vit-base-patch16-224"
    text_encoder: str = "bert-base-uncased"
    embed_dim: int = Field(512, ge=1)
    projection: Literal["linear", "mlp"] = "linear"
    temperature: float = Field(0.1, gt=0)
    learnable_temperature: bool = False
    max_logit_scale: float = Field(100.0, gt=0)
    attn_implementation: Literal["eager", "sdpa"] = "sdpa"
    max_text_length: int = Field(128, ge=8)
    text_pooling: Literal["cls", "mean", "pooler"] = "cls"  # mean: for random text encoders
    image_pooling: Literal["cls", "pooler"] = "cls"  # pooler: keep a ViT's dense+tanh pooler
    # A pretrained dual encoder to start from (HF CLIPModel / VisionTextDualEncoderModel name or
    # directory, open_clip checkpoint file or directory, hf-hub:ORG/NAME): it decides the
    # encoders, projections, embed_dim and pooling (chestclip.models.init_from).
    init_from: str | None = None
    tokenizer_vocab_size: int = Field(2000, ge=100)  # used only when a tokenizer is trained


class AugmentConfig(_Section):
    """Training-split augmentation; no horizontal flip (left/right matter in reports)."""

    enabled: bool = True
    degrees: float = Field(5.0, ge=0)
    scale: float = Field(0.05, ge=0, lt=1)
    shift: float = Field(0.05, ge=0, lt=1)
    brightness: float = Field(0.1, ge=0)
    contrast: float = Field(0.1, ge=0, lt=1)


class PretrainConfig(_Section):
    """``chestclip pretrain``: contrastive training with PyTorch Lightning."""

    optimizer: Literal["adamw", "adam"] = "adamw"
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    batch_size: int = Field(32, ge=2)
    epochs: int = Field(30, ge=1)
    accumulate_grad_batches: int = Field(1, ge=1)
    scheduler: Literal["none", "plateau", "step", "cosine"] = "plateau"
    plateau_factor: float = Field(0.1, gt=0, lt=1)
    plateau_patience: int = Field(2, ge=0)
    step_size: int = Field(10, ge=1)
    step_gamma: float = Field(0.1, gt=0)
    warmup_epochs: int = Field(1, ge=0)
    early_stopping_patience: int = Field(5, ge=0)  # 0 disables early stopping
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    accelerator: str = "auto"
    devices: int | str | list[int] = "auto"
    strategy: str = "auto"
    num_nodes: int = Field(1, ge=1)
    views: Literal["all", "frontal"] = "all"
    num_workers: int = Field(2, ge=0)
    # where a sharded cache's tar shards are read from, if not PREPARED/shards: a shared file
    # system path, an fsspec URL (s3://bucket/prepared/shards) or a WebDataset pipe: command
    shards_url: str | None = None
    augment: AugmentConfig = AugmentConfig()
    limit_train_batches: float | int = 1.0
    log_every_n_steps: int = Field(10, ge=1)
    # experiment loggers (chestclip.training.loggers); all but csv need the `loggers` extra
    loggers: tuple[Literal["csv", "tensorboard", "wandb", "mlflow"], ...] = ("csv",)

    def trainer_options(self) -> dict[str, Any]:
        """The ``lightning.Trainer`` arguments these settings fix (hardware, precision, length)."""
        keys = ("accelerator", "devices", "strategy", "num_nodes", "precision",
                "accumulate_grad_batches", "limit_train_batches", "log_every_n_steps")  # fmt: skip
        return {"max_epochs": self.epochs, **{key: getattr(self, key) for key in keys}}


class ProbeConfig(_Section):
    """Classifier heads on frozen CLIP features (the paper's MLP 1024→512→512→2)."""

    hidden_sizes: tuple[int, ...] = (512, 512)
    dropout: float = Field(0.0, ge=0, lt=1)
    optimizer: Literal["adamw", "adam"] = "adamw"
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(25, ge=1)
    # the leakage ablation: text-reading heads also trained on each of these report sections
    # (indication only: known before the image is read); [] trains none
    ablation: tuple[tuple[str, ...], ...] = (("indication",),)
    # multi-label heads (one sigmoid per finding) beside the binary ones, trained when the
    # prepared data has findings.csv (``chestclip.training.findings_probe``)
    findings: bool = True

    @field_validator("ablation", mode="before")
    @classmethod
    def _comma_lists(cls, value: Any) -> Any:
        """``[indication, "indication,history"]``: each item one comma-separated field list."""
        if isinstance(value, str):
            value = [value]
        return tuple(
            tuple(f.strip() for f in item.split(",") if f.strip())
            if isinstance(item, str)
            else item
            for item in value
        )


class StagesConfig(_Section):
    """Which stages ``chestclip run`` runs after ``prepare`` (all by default); a stage switched
    off has its outputs removed, so the report never shows results of an older config."""

    pretrain: bool = True
    probe: bool = True
    baseline: bool = True  # the paper's fine-tuned image-only comparison
    evaluate: bool = True
    explain: bool = True
    zeroshot: bool = True
    retrieve: bool = True
    report: bool = True

    @model_validator(mode="after")
    def _needs_what_it_reads(self) -> StagesConfig:
        for stage, needed in STAGE_NEEDS.items():
            missing = [n for n in needed if getattr(self, stage) and not getattr(self, n)]
            if missing:
                needed = missing[0]
                raise ValueError(f"{stage} needs {needed}: switch {needed} on or {stage} off")
        return self


# what each stage reads that an earlier switchable stage writes
STAGE_NEEDS = {
    "probe": ("pretrain",),
    "evaluate": ("probe",),
    "explain": ("probe",),
    "zeroshot": ("pretrain",),
    "retrieve": ("pretrain",),
    "report": ("evaluate",),
}


class RunConfig(_Section):
    """Every stage's settings; the class defaults are the paper's recipe (configs/paper.yaml)."""

    seed: int = 0
    prepare: PrepareConfig = PrepareConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig()
    probe: ProbeConfig = ProbeConfig()
    stages: StagesConfig = StagesConfig()


def load_run_config(source: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """Defaults ← YAML (a path, or a packaged name such as ``paper``/``tiny``) ← overrides."""
    data: dict[str, Any] = {}
    where = "defaults"
    if source is not None:
        path = config_path(source)
        data, where = read_yaml(path), str(path)
    data = apply_overrides(data, list(overrides))
    return validate(RunConfig, data, where if not overrides else f"{where} with overrides")


def run_config_yaml(config: RunConfig) -> str:
    """The resolved config as YAML, ready to be passed back with --config."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def save_run_config(config: RunConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically), ready to be passed back with --config."""
    atomic_write_text(path, run_config_yaml(config))


def config_keys(section: BaseModel, prefix: str = "") -> list[tuple[str, str, Any]]:
    """Every settable key of ``section`` as (dotted key for --set, its type, its value)."""
    keys = []
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            keys += config_keys(value, f"{prefix}{name}.")
        else:
            kind = getattr(field.annotation, "__name__", None) or str(field.annotation)
            keys.append((f"{prefix}{name}", kind.replace("typing.", ""), value))
    return keys


def config_path(source: str | Path) -> Path:
    """A YAML path as given, or the packaged config of that name (``paper``, ``sweep-paper``)."""
    path = Path(source)
    return path if path.suffix in (".yaml", ".yml") or path.exists() else packaged_config(str(path))


def packaged_config(name: str) -> Path:
    """Path of a YAML shipped in ``chestclip/configs`` (``paper``, ``tiny``, ...)."""
    path = Path(str(resources.files("chestclip.configs").joinpath(f"{name}.yaml")))
    if not path.is_file():
        raise ConfigError(f"no packaged config named {name!r}")
    return path


def read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML scalars/lists)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value")
        try:
            data = set_dotted(data, key.strip(), yaml.safe_load(raw))
        except ConfigError as err:
            raise ConfigError(f"override {item!r}: {err}") from None
        except yaml.YAMLError as err:  # broken YAML, or a tag such as !!python/object
            problem = str(err).strip().splitlines()[0]
            raise ConfigError(f"override {item!r}: not a YAML value: {problem}") from None
    return data


def set_dotted(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with the dotted ``key`` (e.g. ``pretrain.lr``) set to ``value``."""
    data = copy.deepcopy(data)
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{part!r} is not a section")
    node[leaf] = value
    return data


def validate(model: type[BaseModel], data: dict[str, Any], where: str) -> Any:
    """Validate ``data`` into ``model``; errors become one line naming the source and the field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}: {field + ': ' if field else ''}{first['msg']}") from None
