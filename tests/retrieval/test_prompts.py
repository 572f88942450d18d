import re
from pathlib import Path

import pytest
import yaml

from chestclip.data.text import NEGATIONS, clean_text
from chestclip.errors import ChestClipError
from chestclip.retrieval import PromptError, PromptTask, load_prompts

VALID_TASK = {"label": "abnormal", "positive": ["The heart is enlarged."], "negative": ["Clear."]}


def write_prompts(tmp_path: Path, tasks: object) -> Path:
    path = tmp_path / "prompts.yaml"
    path.write_text(yaml.safe_dump({"tasks": tasks}))
    return path


def test_shipped_prompts_load_with_the_expected_tasks_and_rules():
    prompts = load_prompts()
    tasks = prompts.tasks
    assert list(tasks) == ["abnormal", "cardiomegaly", "effusion", "opacity", "nodule"]
    assert tasks["abnormal"].label == "abnormal" and tasks["abnormal"].mesh_any is None
    assert tasks["cardiomegaly"].mesh_any == ("Cardiomegaly",)
    assert tasks["effusion"].mesh_any == ("Pleural Effusion",)
    assert set(tasks["opacity"].mesh_any) == {"Opacity", "Consolidation", "Airspace Disease"}
    assert set(tasks["nodule"].mesh_any) == {"Nodule", "Mass"}
    assert all(task.name == name for name, task in tasks.items())


@pytest.mark.parametrize("mode", ["safe", "paper", "none"])
def test_shipped_prompts_stay_distinct_under_every_cleaning_mode(mode):
    for task in load_prompts().tasks.values():
        positive, negative = task.cleaned(mode)
        assert positive and negative and not set(positive) & set(negative)


@pytest.mark.parametrize("mode", ["safe", "paper", "none"])
def test_every_packaged_prompt_keeps_its_negations_under_every_cleaning_mode(mode):
    """Read as "pleural effusion", "No pleural effusion" would describe the finding it denies."""
    for task in load_prompts().tasks.values():
        positive, negative = task.cleaned(mode)
        prompts = (*task.positive, *task.negative)
        for prompt, cleaned in zip(prompts, (*positive, *negative), strict=True):
            said, kept = (
                set(re.sub(r"[^a-z0-9\s]", " ", t.lower()).split()) for t in (prompt, cleaned)
            )
            assert said & NEGATIONS <= kept, f"{task.name}: {prompt!r} → {cleaned!r}"


@pytest.mark.parametrize(
    "negative",
    ["No pulmonary nodules or masses.", "There is no focal consolidation.", "Isn't enlarged."],
)
def test_a_negative_prompt_whose_negation_cleaning_deletes_is_refused(negative):
    task = PromptTask(
        name="nodule", mesh_any=["Nodule"], positive=["A nodule."], negative=[negative]
    )
    assert task.cleaned("safe")[1] == [clean_text(negative, "safe")]  # safe keeps negations
    with pytest.raises(PromptError, match=r"'nodule'.*loses its negation.*'paper' cleaning"):
        task.cleaned("paper")


def test_abnormal_positive_prompts_describe_findings_not_their_absence():
    positive, _ = load_prompts().tasks["abnormal"].cleaned("safe")
    for prompt in positive:
        words = prompt.split()
        assert "no" not in words and "normal" not in words, prompt


def test_prompts_are_cleaned_like_the_reports():
    task = load_prompts().tasks["effusion"]
    positive, negative = task.cleaned("paper")
    assert positive == [clean_text(p, "paper") for p in task.positive]
    assert negative == [clean_text(p, "paper") for p in task.negative]


def test_a_negation_lost_in_cleaning_is_an_error_not_an_inverted_prompt():
    task = PromptTask(
        name="effusion", mesh_any=["Pleural Effusion"],
        positive=["Pleural effusion."], negative=["No pleural effusion."],
    )  # fmt: skip
    assert task.cleaned("safe") == (["pleural effusion"], ["no pleural effusion"])
    with pytest.raises(PromptError, match=r"'effusion'.*'pleural effusion' after 'paper'"):
        task.cleaned("paper")


def test_a_prompt_that_cleans_to_nothing_is_an_error():
    task = PromptTask(name="t", label="abnormal", positive=["It is."], negative=["Clear."])
    with pytest.raises(PromptError, match=r"'It is\.' is empty after 'safe' cleaning"):
        task.cleaned("safe")


@pytest.mark.parametrize(
    ("tasks", "problem"),
    [
        (
            {"t": {"label": "abnormal", "positive": ["Enlarged heart."]}},
            "tasks.t.negative: Field required",
        ),
        ({"t": {**VALID_TASK, "positive": []}}, "tasks.t.positive: .*at least 1 item"),
        ({"t": {**VALID_TASK, "negative": ["  "]}}, "tasks.t.negative.0: .*at least 1 character"),
        ({"t": {**VALID_TASK, "label": "diseased"}}, "tasks.t.label: Input should be 'abnormal'"),
        ({"t": {**VALID_TASK, "mesh_all": ["Mass"]}}, "tasks.t.mesh_all: Extra inputs"),
        ({"t": {**VALID_TASK, "mesh_any": ["Mass"]}}, "tasks.t: .*exactly one label rule"),
        ({"t": {"positive": ["a b"], "negative": ["c d"]}}, "tasks.t: .*exactly one label rule"),
        (
            {"t": {**VALID_TASK, "label": None, "mesh_any": []}},
            "tasks.t.mesh_any: .*at least 1 item",
        ),
        ({}, "tasks: .*at least 1 item"),
        (["abnormal"], "tasks: .*valid dictionary"),
    ],
)
def test_an_invalid_prompt_file_is_a_one_line_error_naming_it(tmp_path, tasks, problem):
    path = write_prompts(tmp_path, tasks)
    with pytest.raises(ChestClipError, match=f"^{re.escape(str(path))}: {problem}") as error:
        load_prompts(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [("tasks: [unclosed", "cannot read YAML"), ("- a list", "expected a mapping")],
)
def test_an_unreadable_prompt_file_is_a_one_line_error(tmp_path, content, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ChestClipError, match=f"^{re.escape(str(path))}: {problem}") as error:
        load_prompts(path)
    assert "\n" not in str(error.value)


def test_a_missing_prompt_file_is_a_one_line_error(tmp_path):
    with pytest.raises(ChestClipError, match=r"nope\.yaml: cannot read YAML") as error:
        load_prompts(tmp_path / "nope.yaml")
    assert "\n" not in str(error.value)
