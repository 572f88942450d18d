"""Report lexicon: zones by side and location, NegEx-style negation, agreement with heat maps."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from chestclip.explain import agreement, find_mentions, mentioned_zones
from chestclip.explain.lexicon import sentences

BOTH_LOWER = {"right_lower", "left_lower"}


@pytest.mark.parametrize(
    ("text", "zones"),
    [
        ("Right lower lobe consolidation.", {"right_lower"}),
        ("Opacity at the right base.", {"right_lower"}),
        ("Minimal right basilar atelectasis.", {"right_lower"}),
        ("Patchy opacity in the left upper lobe.", {"left_upper"}),
        ("Scarring in the left apex.", {"left_upper"}),
        ("Calcified lingular granuloma.", {"left_middle"}),
        ("Focal airspace disease in the right middle lobe.", {"right_middle"}),
        ("Mild cardiomegaly.", {"cardiac_silhouette"}),
        ("The heart is enlarged.", {"cardiac_silhouette"}),
        ("The cardiac silhouette is mildly enlarged.", {"cardiac_silhouette"}),
        ("Small right pleural effusion.", {"right_costophrenic"}),
        ("Left-sided pleural effusion.", {"left_costophrenic"}),
        ("Effusion on the left.", {"left_costophrenic"}),
        ("Bilateral pleural effusions.", {"right_costophrenic", "left_costophrenic"}),
        ("Blunting of the right costophrenic angle.", {"right_costophrenic"}),
        ("Widened mediastinum.", {"mediastinum"}),
        ("Mediastinal widening.", {"mediastinum"}),
        ("Bibasilar atelectasis.", BOTH_LOWER),
        ("Small pleural effusion.", set()),  # no side: no zone
        ("The lungs are clear.", set()),
    ],
)
def test_phrases_map_to_zones(text, zones):
    assert mentioned_zones(text) == zones


@pytest.mark.parametrize(
    "text",
    [
        "No pleural effusion.",
        "No right pleural effusion or pneumothorax.",
        "Without right lower lobe consolidation.",
        "Negative for cardiomegaly.",
        "The heart is not enlarged.",
        "Lungs free of left upper lobe disease.",
        "No focal airspace disease, pneumothorax, or large left pleural effusion.",
        "Right lower lobe opacity has resolved.",
        "The right base is clear.",
        "There is no mediastinal widening.",
    ],
)
def test_negated_mentions_do_not_count(text):
    assert mentioned_zones(text) == set()


def test_negation_stays_in_its_sentence_and_stops_at_termination_terms():
    assert mentioned_zones("No effusion. Right lower lobe opacity.") == {"right_lower"}
    assert mentioned_zones("No effusion, but left lower lobe opacity.") == {"left_lower"}
    assert mentioned_zones("No pneumothorax; cardiomegaly.") == {"cardiac_silhouette"}


def test_pseudo_negations_are_not_negations():
    assert mentioned_zones("No interval change in right basilar opacity.") == {"right_lower"}
    nodule = "There is a 9 mm right lower lobe nodule, not seen on prior exams."
    assert mentioned_zones(nodule) == {"right_lower"}


def test_mentions_keep_their_evidence():
    [mention] = find_mentions("FINDINGS: No left pleural effusion.")
    assert mention.zones == ("left_costophrenic",) and mention.negated
    assert mention.phrase == "left pleural effusion"
    assert mention.sentence == "no left pleural effusion"


def test_sentences_split_on_punctuation_but_not_decimals():
    assert sentences("A 1.5 cm nodule. Right-sided effusion") == [
        "a 1.5 cm nodule",
        "right sided effusion",
    ]


def test_agreement_is_the_mass_in_the_mentioned_zones():
    masses = {"right_lower": 0.5, "left_lower": 0.2, "outside": 0.3}
    assert math.isclose(agreement(masses, BOTH_LOWER), 0.7)
    assert math.isnan(agreement(masses, set()))
    with pytest.raises(ValueError, match="mediastinum"):
        agreement(masses, {"mediastinum"})


@pytest.mark.real_data
def test_real_reports(real_iu):
    reports = pd.read_csv(real_iu / "kaggle/indiana_reports.csv")
    texts = (reports["findings"].fillna("") + " " + reports["impression"].fillna("")).tolist()
    found = [mentioned_zones(text) for text in texts]
    assert sum("right_lower" in zones for zones in found) > 0
    assert sum("cardiac_silhouette" in zones for zones in found) > 0
    assert sum(zones >= {"right_costophrenic", "left_costophrenic"} for zones in found) > 0
    no_effusion = [s for text in texts for s in sentences(text) if "no pleural effusion" in s]
    assert no_effusion
    for sentence in no_effusion:
        assert not any("costophrenic" in zone for zone in mentioned_zones(sentence)), sentence
    normal_heart = [s for text in texts for s in sentences(text) if "heart is not enlarged" in s]
    assert normal_heart
    assert all("cardiac_silhouette" not in mentioned_zones(s) for s in normal_heart)
