"""Head-versus-head claims, measured as paired differences: which pairs a report compares, and
their ROC-AUC differences with paired bootstrap intervals over patients.

A claim such as "the multimodal head beats the image-only one" or "this head is below the
bag-of-words" rests on the DIFFERENCE of two AUCs measured on the same test patients. Two
separate intervals that overlap do not settle it, nor do two point estimates; the paired
interval of the difference does (``metrics.paired_auc_difference``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from chestclip.evaluation.metrics import LEVELS, paired_auc_difference, per_study
from chestclip.training.finetune import FINETUNED

BASELINE = "bag-of-words"


def head_comparisons(heads: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(head, reference, what the difference measures)`` for every pair the report's claims
    rest on, from each head's provenance (``features``, ``text_fields``):

    - a text-reading head vs the bag-of-words on the same text fields;
    - a multimodal head vs every image-only head (what the text adds) and vs the text-only head
      on the same fields (what the image adds);
    - the image head on frozen CLIP features vs the fine-tuned image baseline.
    """
    image_only = [name for name, h in heads.items() if h["text_fields"] is None]
    pairs = []
    for name, head in heads.items():
        fields = head["text_fields"]
        if not fields or name.startswith(BASELINE):
            continue
        bag_of_words = f"{BASELINE}_{'+'.join(fields)}"
        if bag_of_words in heads:
            pairs.append((name, bag_of_words, "vs a word count on the same text"))
        if head["features"] == "image+text":
            pairs += [(name, other, "what the text adds to the image") for other in image_only]
            pairs += [
                (name, other, "what the image adds to the text")
                for other, h in heads.items()
                if h["features"] == "text" and h["text_fields"] == fields
            ]
    if "image" in heads and FINETUNED in heads:
        pairs.append(("image", FINETUNED, "frozen CLIP features vs the fine-tuned encoder"))
    return pairs


def compare_heads(
    test: pd.DataFrame, heads: dict[str, dict[str, Any]], n_boot: int, seed: int
) -> list[dict[str, Any]]:
    """Every pair of :func:`head_comparisons`: the test ROC-AUC difference (head − reference)
    per image and per study (views averaged), each with a paired bootstrap interval over
    patients. ``test`` has columns ``uid, label`` and one score column per head."""
    frames = {"image": test, "study": per_study(test, list(heads))}
    return [
        {
            "head": head,
            "reference": reference,
            "measures": measures,
            "metric": "roc_auc",
            "levels": {
                level: paired_auc_difference(
                    frames[level]["label"],
                    frames[level][head],
                    frames[level][reference],
                    frames[level]["uid"],
                    n_boot,
                    seed,
                )
                for level in LEVELS
            },
        }
        for head, reference, measures in head_comparisons(heads)
    ]
