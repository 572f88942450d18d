import pandas as pd
import pytest

from chestclip.data.text import build_text, clean_text, nltk_stopwords, section_text


def test_stopword_list_is_nltk_english():
    words = nltk_stopwords()
    assert len(words) == 179
    assert {"no", "not", "nor", "the", "above", "below", "isn", "won't"} <= words


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("paper", "pneumothorax pleural effusion heart size normal"),
        ("safe", "no pneumothorax pleural effusion heart size normal"),
        ("none", "No pneumothorax or pleural effusion. The heart size is normal."),
    ],
)
def test_cleaning_modes(mode, expected):
    assert (
        clean_text("No pneumothorax or  pleural effusion. The heart size is normal.", mode)
        == expected
    )


def test_safe_keeps_every_negation_form():
    text = "Lungs are not hyperinflated, nor is there consolidation. Heart isn't enlarged."
    assert (
        clean_text(text, "safe") == "lungs not hyperinflated nor consolidation heart isn enlarged"
    )
    assert clean_text(text, "paper") == "lungs hyperinflated consolidation heart enlarged"


def test_deidentification_tokens_and_ages_are_removed():
    text = "XXXX-year-old male with XXXX. 45 year old with cough, x-XXXX of the chest."
    assert clean_text(text, "paper") == "male cough chest"
    assert clean_text(text, "safe") == "male cough chest"


def test_special_characters_and_case():
    assert clean_text("Right-sided T10 FRACTURE (old)!", "paper") == "right sided t10 fracture old"


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="cleaning mode"):
        clean_text("text", "aggressive")


def test_build_text_joins_chosen_fields_as_sentences():
    reports = pd.DataFrame(
        [
            {
                "indication": "Cough",
                "findings": "Clear lungs.",
                "impression": "Normal",
                "comparison": "",
            }
        ]
    )
    assert build_text(reports, ("indication", "findings"), "none").iloc[0] == "Cough. Clear lungs."
    assert build_text(reports, ("impression",), "safe").iloc[0] == "normal"
    with pytest.raises(ValueError, match="unknown text field"):
        build_text(reports, ("history",), "safe")


@pytest.mark.parametrize("mode", ["safe", "paper", "none"])
@pytest.mark.parametrize("typed", ["cough and fever", "  Cough and fever.  ", "Chest pain?"])
def test_a_typed_section_is_built_exactly_as_training_built_its_texts(mode, typed):
    """`predict --indication` must give the indication-only head the text it was trained on:
    under `clean: none` training ended every section with a full stop."""
    trained = build_text(pd.DataFrame([{"indication": typed}]), ("indication",), mode).iloc[0]
    assert section_text(typed, mode) == trained
