"""Head-versus-head claims as paired ROC-AUC differences, and the red flag they decide."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from chestclip.evaluation.comparisons import compare_heads, head_comparisons
from chestclip.evaluation.evaluate import below_baseline_warnings
from chestclip.evaluation.metrics import bootstrap_ci, paired_auc_difference

RUN_HEADS = {
    "image": {"features": "image", "text_fields": None},
    "multimodal": {"features": "image+text", "text_fields": ["indication", "findings"]},
    "text": {"features": "text", "text_fields": ["indication", "findings"]},
    "multimodal_indication": {"features": "image+text", "text_fields": ["indication"]},
    "image-finetuned": {"features": "image (fine-tuned)", "text_fields": None},
    "bag-of-words_indication+findings": {
        "features": "tfidf",
        "text_fields": ["indication", "findings"],
    },
}


def worse(test, shift: float, seed: int, noise: float = 0.05):
    """``test``'s scores moved ``shift`` logits towards the wrong class, plus ``noise``: with a
    small shift, a consistent loss of AUC much smaller than either AUC's own uncertainty."""
    rng = np.random.default_rng(seed)
    logit = np.log(test["score"] / (1 - test["score"]))
    moved = logit - shift * (2 * test["label"] - 1) + noise * rng.standard_normal(len(test))
    return 1 / (1 + np.exp(-moved))


def test_the_compared_pairs_follow_the_heads_provenance():
    pairs = {(head, reference) for head, reference, _ in head_comparisons(RUN_HEADS)}
    assert pairs == {
        ("multimodal", "bag-of-words_indication+findings"),
        ("text", "bag-of-words_indication+findings"),
        ("multimodal", "image"),
        ("multimodal", "image-finetuned"),
        ("multimodal", "text"),
        ("multimodal_indication", "image"),
        ("multimodal_indication", "image-finetuned"),
        ("image", "image-finetuned"),
    }


def test_the_paired_difference_is_the_difference_of_aucs_and_pairing_narrows_it(scored):
    test = scored(150, images_per_patient=2, seed=22)
    reference = worse(test, 0.25, seed=1)
    result = paired_auc_difference(test["label"], test["score"], reference, test["uid"], 500)
    expected = roc_auc_score(test["label"], test["score"]) - roc_auc_score(test["label"], reference)
    assert result["value"] == pytest.approx(expected) and result["unit"] == "patient (uid)"
    # the separate intervals overlap, yet the paired one shows the difference is real
    own = bootstrap_ci(test["label"], test["score"], test["uid"], 0.5, 500)["roc_auc"]
    other = bootstrap_ci(test["label"], reference, test["uid"], 0.5, 500)["roc_auc"]
    assert own[0] < other[1]
    assert 0 < result["ci_low"] < result["value"] < result["ci_high"]
    same = paired_auc_difference(test["label"], test["score"], test["score"], test["uid"], 100)
    assert (same["value"], same["ci_low"], same["ci_high"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("shift", "noise", "flagged"),
    [(0.0, 0.6, False), (0.6, 0.05, True)],  # below within the noise; clearly below
)
def test_below_the_bag_of_words_is_flagged_only_when_the_interval_excludes_zero(
    scored, shift, noise, flagged
):
    test = scored(150, images_per_patient=2, seed=23)
    head = worse(test, shift, seed=0, noise=noise)
    test = test.assign(**{"bag-of-words_indication": test["score"], "multimodal_indication": head})
    heads = {
        "multimodal_indication": {"features": "image+text", "text_fields": ["indication"]},
        "bag-of-words_indication": {"features": "tfidf", "text_fields": ["indication"]},
    }
    (comparison,) = compare_heads(test, heads, n_boot=400, seed=0)
    difference = comparison["levels"]["image"]
    assert difference["value"] < 0  # a lower point estimate either way
    assert set(comparison["levels"]) == {"image", "study"}
    warnings = below_baseline_warnings([comparison])
    assert bool(warnings) is flagged
    if flagged:
        assert warnings[0].startswith("RED FLAG: multimodal_indication is below")
        assert "95% CI below 0" in warnings[0] and "−" in warnings[0]


def _comparison(head: str, reference: str, value, low, high, study=(0.0, -0.1, 0.1)) -> dict:
    """A comparison as ``compare_heads`` writes it, with a hand-chosen per-image difference."""
    image = {"value": value, "ci_low": low, "ci_high": high, "n_boot": 400}
    per_study = dict(zip(("value", "ci_low", "ci_high"), study, strict=True))
    return {"head": head, "reference": reference, "levels": {"image": image, "study": per_study}}


@pytest.mark.parametrize(
    ("value", "low", "high", "flagged"),
    [
        (-0.08, -0.12, -0.03, True),  # the whole interval below 0
        (-0.05, -0.11, 0.02, False),  # below as a point estimate, the interval holds 0
        (-0.05, -0.11, 0.0, False),  # the interval reaches 0: not established
        (0.04, 0.01, 0.08, False),  # above the bag-of-words
        (-0.05, None, None, False),  # no bootstrap (n_boot=0): no interval, no claim
    ],
)
def test_the_red_flag_is_raised_exactly_when_the_paired_interval_lies_below_zero(
    value, low, high, flagged
):
    bag = _comparison("text_indication", "bag-of-words_indication", value, low, high)
    warnings = below_baseline_warnings([bag])
    assert len(warnings) == int(flagged)
    if flagged:
        assert warnings == [
            "RED FLAG: text_indication is below the bag-of-words baseline on the same text: "
            "ROC-AUC difference −0.080 (−0.120 to −0.030) per image, paired bootstrap over "
            "patients, 95% CI below 0: the CLIP features lose information a word count keeps"
        ]


def test_the_red_flag_reads_the_bag_of_words_comparisons_per_image_only():
    below = (-0.08, -0.12, -0.03)
    comparisons = [
        _comparison("multimodal", "image", *below),  # below another head: no bag-of-words claim
        _comparison("text", "bag-of-words_indication+findings", 0.01, -0.02, 0.04, study=below),
        _comparison("multimodal", "bag-of-words_indication+findings", *below),
        _comparison("multimodal_indication", "bag-of-words_indication", *below),
    ]
    flagged = [w.split()[2] for w in below_baseline_warnings(comparisons)]
    assert flagged == ["multimodal", "multimodal_indication"]
