"""Typed, validated configuration. Flow: defaults ← packaged YAML ← user YAML ← ``--set`` overrides.

Each stage has its own section; the resolved config is saved beside every output.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chestclip.errors import ChestClipError


class ConfigError(ChestClipError):
    """A config file or override that does not validate; the message is one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrepareConfig(_Section):
    """``chestclip prepare``: how reports and images become a training-ready dataset."""

    image_size: int = Field(224, ge=16, le=4096)
    views: Literal["all", "frontal"] = "all"
    text_fields: tuple[str, ...] = ("indication", "findings")
    clean: Literal["safe", "paper", "none"] = "safe"
    split: tuple[float, float, float] = (0.70, 0.15, 0.15)
    seed: int = 0
    images: bool = True
    resize: Literal["pad", "stretch"] = "pad"
    workers: int = Field(default_factory=lambda: min(8, os.cpu_count() or 1), ge=1)

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
        return tuple(float(v) for v in value.split(",")) if isinstance(value, str) else value


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
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value")
        *parents, leaf = key.strip().split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return data


def validate(model: type[BaseModel], data: dict[str, Any], where: str) -> Any:
    """Validate ``data`` into ``model``; errors become one line naming the source and the field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where}: {field}: {first['msg']}") from None
