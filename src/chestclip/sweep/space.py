"""The sweep file: a base run config, a search space over its dotted keys, the search method and
the validation metric to select on — validated once, with one-line errors naming the file.

```yaml
base: tiny                      # packaged name, or a path (relative to this file)
search: tpe                     # grid | random | tpe
trials: 20                      # budget for random/tpe (grid runs every combination)
metric: probe_val_auc           # or clip_val_loss (minimised)
head: multimodal                # whose validation ROC-AUC probe_val_auc means
seed: 0                         # sampler seed
fixed: {pretrain.epochs: 3}     # the same in every trial
space:
  pretrain.optimizer: [adamw, adam]             # choices (any search)
  pretrain.lr: {low: 1.0e-5, high: 1.0e-3, log: true}   # range (random/tpe only)
```
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from chestclip.config import (
    ConfigError,
    PrepareConfig,
    RunConfig,
    config_path,
    load_run_config,
    read_yaml,
    set_dotted,
    validate,
)
from chestclip.models.heads import HEAD_INPUTS

DIRECTIONS = {"probe_val_auc": "maximize", "clip_val_loss": "minimize"}


class Range(BaseModel):
    """An interval for random/TPE search: integer when both ends are integers; ``log`` samples
    uniformly in the logarithm (learning rates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: int | float
    high: int | float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise PydanticCustomError("range", "low must be below high")
        if self.log and self.low <= 0:
            raise PydanticCustomError("range", "a log range needs low > 0")
        return self

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


def _entry_kind(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        return "choices"
    return "range" if isinstance(value, dict | Range) else None


Choices = Annotated[tuple[Any, ...], Field(min_length=1)]
Entry = Annotated[
    Annotated[Choices, Tag("choices")] | Annotated[Range, Tag("range")],
    Discriminator(
        _entry_kind,
        custom_error_type="space_entry",
        custom_error_message="expected a list of values or {low, high, log}",
    ),
]


def choice_label(value: Any) -> Any:
    """Optuna's categorical values are scalars: a list or mapping choice goes by its JSON text."""
    scalar = value is None or isinstance(value, bool | int | float | str)
    return value if scalar else json.dumps(value)


class SweepSpec(BaseModel):
    """What to search and how to choose; the direction follows from the metric."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str
    search: Literal["grid", "random", "tpe"] = "grid"
    trials: int | None = Field(None, ge=1)
    metric: Literal["probe_val_auc", "clip_val_loss"] = "probe_val_auc"
    head: Literal[tuple(HEAD_INPUTS)] = "multimodal"  # each head `probe` trains
    seed: int = 0
    fixed: dict[str, Any] = {}
    space: dict[str, Entry] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        ranges = [key for key, entry in self.space.items() if isinstance(entry, Range)]
        if self.search == "grid" and ranges:
            raise PydanticCustomError(
                "sweep", "grid search needs a list of values for every key; {key} is a range",
                {"key": ranges[0]},
            )  # fmt: skip
        if self.search == "grid" and self.trials is not None:
            raise PydanticCustomError("sweep", "grid search runs every combination; drop trials")
        if self.search != "grid" and self.trials is None:
            raise PydanticCustomError("sweep", "random and tpe search need a budget: trials: N")
        for key in (*self.fixed, *self.space):
            if key.split(".")[0] == "prepare":
                raise PydanticCustomError(
                    "sweep", "{key}: every trial uses the one prepared dataset (--data)",
                    {"key": key},
                )  # fmt: skip
        for key, entry in self.space.items():
            labels = [choice_label(c) for c in entry] if isinstance(entry, tuple) else []
            if len(set(map(json.dumps, labels))) < len(labels):
                raise PydanticCustomError("sweep", "space.{key}: repeated value", {"key": key})
        if self.metric == "clip_val_loss" and "pretrain.batch_size" in self.space:
            raise PydanticCustomError(
                "sweep",
                "clip_val_loss is not comparable across pretrain.batch_size values (the InfoNCE "
                "loss over B pairs grows with log B): select on probe_val_auc",
            )
        return self

    @property
    def direction(self) -> str:
        return DIRECTIONS[self.metric]

    @property
    def objective(self) -> str:
        """The validation metric column trials are ranked by."""
        return f"probe_val_auc_{self.head}" if self.metric == "probe_val_auc" else self.metric

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the choices, as Optuna parameters (grid search only)."""
        keys = list(self.space)
        labels = [[choice_label(c) for c in self.space[k]] for k in keys]
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*labels)]

    @property
    def budget(self) -> int:
        """Trials to finish: every combination for grid, else ``trials``."""
        return len(self.grid()) if self.search == "grid" else self.trials


def suggest(trial: optuna.Trial, space: dict[str, tuple[Any, ...] | Range]) -> dict[str, Any]:
    """One trial's values by dotted key, drawn by the study's sampler (or fixed by its queue)."""
    params = {}
    for key, entry in space.items():
        if isinstance(entry, Range):
            draw = trial.suggest_int if entry.integer else trial.suggest_float
            params[key] = draw(key, entry.low, entry.high, log=entry.log)
        else:
            labels = {choice_label(choice): choice for choice in entry}
            params[key] = labels[trial.suggest_categorical(key, list(labels))]
    return params


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    """Random or TPE; grid points are queued as fixed trials instead (Optuna's GridSampler stops
    the study from inside ``tell``, which only works under ``optimize``, not ask-and-tell)."""
    if spec.search == "tpe":
        # constant liar: parallel workers do not all propose the point a running trial has taken
        return optuna.samplers.TPESampler(seed=spec.seed, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=spec.seed)


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file and its base run config (``fixed`` applied)."""

    spec: SweepSpec
    base: RunConfig
    source: Path

    def config(self, params: dict[str, Any], prepare: PrepareConfig | None = None) -> RunConfig:
        """One trial's run config: the base with ``params`` set, and the preparation of the
        dataset it trains on (so its config.yaml says how its data was made)."""
        where = f"{self.source}: " + ", ".join(f"{key}={value!r}" for key, value in params.items())
        data = self.base.model_dump(mode="json")
        if prepare is not None:
            data["prepare"] = prepare.model_dump(mode="json")
        try:
            for key, value in params.items():
                data = set_dotted(data, key, value)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        return validate(RunConfig, data, where)


def load_sweep(source: str | Path) -> Sweep:
    """Read and check a sweep file (a path or a packaged name such as ``sweep-paper``): its
    fields, its base config, and every value of the space against the run config."""
    path = config_path(source)
    spec = validate(SweepSpec, read_yaml(path), str(path))
    beside = path.parent / spec.base
    try:
        base = load_run_config(beside if beside.is_file() else spec.base).model_dump(mode="json")
    except ConfigError as err:
        raise ConfigError(f"{path}: base: {err}") from None
    try:
        for key, value in spec.fixed.items():
            base = set_dotted(base, key, value)
    except ConfigError as err:
        raise ConfigError(f"{path}: fixed: {err}") from None
    sweep = Sweep(spec, validate(RunConfig, base, f"{path}: fixed"), path)
    for key, entry in spec.space.items():
        for value in (entry.low, entry.high) if isinstance(entry, Range) else entry:
            sweep.config({key: value})
    return sweep
