"""The model card's facts as data (what `chestclip serve` answers at /api/model) and as Markdown."""

import shutil

import pytest

from chestclip.errors import ChestClipError
from chestclip.inference.model_card import model_card_facts, write_model_card
from chestclip.inference.predict import validation_thresholds

pytestmark = pytest.mark.slow


def test_facts_and_card_agree(evaluated_run):
    facts = model_card_facts(evaluated_run)
    thresholds = validation_thresholds(evaluated_run)
    assert {name: head["threshold"] for name, head in facts["heads"].items()} == thresholds
    assert facts["model"]["image_encoder"] == "tiny-resnet" and facts["data"]["image_size"] == 64
    assert set(facts["data"]["splits"]) == {"train", "val", "test"}
    assert "Not a medical device" in facts["intended_use"]
    card = write_model_card(evaluated_run).read_text()
    assert f"{thresholds['image']:.3f}" in card and "tiny-resnet" in card


def test_facts_of_an_unevaluated_run_are_empty_not_an_error(probed_run, tmp_path):
    # other tests evaluate the shared run in place: copy it without its evaluation
    run = tmp_path / "run"
    shutil.copytree(probed_run[0], run, ignore=shutil.ignore_patterns("eval"))
    facts = model_card_facts(run)
    assert facts["heads"] == {} and facts["model"]["text_encoder"] == "tiny-bert"
    with pytest.raises(ChestClipError, match="run `chestclip evaluate` first"):
        write_model_card(run)
