"""Zero-shot prompt sets: per task, positive and negative prompt ensembles and a label rule.

The file format (``configs/prompts.yaml``)::

    tasks:
      abnormal:                       # task name
        label: abnormal               # rule: the study's normal (0) / diseased (1) label
        positive: [The heart is enlarged., ...]
        negative: [The lungs are clear., ...]
      effusion:
        mesh_any: [Pleural Effusion]  # rule: any MeSH term under one of these headings
        positive: [...]
        negative: [...]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from chestclip.config import packaged_config, read_yaml, validate
from chestclip.data.text import CleanMode, clean_text, negation_words
from chestclip.errors import ChestClipError

PROMPTS_CONFIG = "prompts"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class PromptError(ChestClipError):
    """Prompts that cannot be told apart, vanish or lose their negations in the dataset's text
    cleaning."""


class PromptTask(BaseModel):
    """One zero-shot task: two prompt ensembles and the rule that labels a study for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    positive: tuple[Text, ...] = Field(min_length=1)
    negative: tuple[Text, ...] = Field(min_length=1)
    label: Literal["abnormal"] | None = None
    mesh_any: tuple[Text, ...] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_label_rule(self) -> PromptTask:
        if (self.label is None) == (self.mesh_any is None):
            raise ValueError("needs exactly one label rule: `label: abnormal` or `mesh_any: [...]`")
        return self

    def cleaned(self, mode: CleanMode) -> tuple[list[str], list[str]]:
        """(positive, negative) prompts cleaned like the prepared reports.

        A prompt that cleans to nothing, to the same text on both sides, or loses a negation is a
        PromptError: ``paper`` cleaning deletes negations, so "no pulmonary nodules or masses"
        would read "pulmonary nodules masses" and describe the very finding it denies.
        """
        positive = [clean_text(prompt, mode) for prompt in self.positive]
        negative = [clean_text(prompt, mode) for prompt in self.negative]
        prompts = (*self.positive, *self.negative)
        for prompt, text in zip(prompts, (*positive, *negative), strict=True):
            if not text:
                raise PromptError(
                    f"task {self.name!r}: prompt {prompt!r} is empty after {mode!r} cleaning"
                )
        shared = sorted(set(positive) & set(negative))
        if shared:
            raise PromptError(
                f"task {self.name!r}: a positive and a negative prompt both read {shared[0]!r} "
                f"after {mode!r} cleaning"
            )
        for prompt, text in zip(prompts, (*positive, *negative), strict=True):
            lost = sorted(negation_words(prompt) - negation_words(text))
            if lost:
                raise PromptError(
                    f"task {self.name!r}: prompt {prompt!r} loses its negation {lost[0]!r} in "
                    f"{mode!r} cleaning and would describe what it denies; say what is seen "
                    "instead (e.g. 'The lungs are clear.')"
                )
        return positive, negative


class PromptSet(BaseModel):
    """Every task of a prompt file, by name, in file order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: dict[str, PromptTask] = Field(min_length=1)

    @field_validator("tasks", mode="before")
    @classmethod
    def _name_tasks(cls, value: Any) -> Any:
        """Each task takes its name from its key in the file."""
        if not isinstance(value, dict):
            return value
        return {
            name: {**task, "name": name} if isinstance(task, dict) else task
            for name, task in value.items()
        }


def load_prompts(path: str | Path | None = None) -> PromptSet:
    """The prompt set in ``path`` (default: the packaged ``configs/prompts.yaml``).

    A missing, malformed or invalid file raises ``chestclip.config.ConfigError`` (a
    ``ChestClipError``) with one line naming the file and the problem.
    """
    path = packaged_config(PROMPTS_CONFIG) if path is None else Path(path)
    return validate(PromptSet, read_yaml(path), str(path))
