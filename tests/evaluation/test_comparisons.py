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
