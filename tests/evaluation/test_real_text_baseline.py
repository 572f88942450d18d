"""Bag-of-words baseline and leakage ablation on the REAL IU reports (skipped when absent)."""

import pytest

from chestclip.config import PrepareConfig
from chestclip.data import prepare_dataset
from chestclip.evaluation.evaluate import evaluate_text_baselines

pytestmark = pytest.mark.real_data


def test_leakage_ablation_on_real_reports(real_iu, tmp_path):
    prepared = prepare_dataset(
        real_iu / "kaggle", tmp_path / "prepared", PrepareConfig(images=False)
    )
    document = evaluate_text_baselines(
        prepared.out, tmp_path / "out", [("indication", "findings"), ("indication",)], n_boot=200
    )
    auc = {
        n: h["levels"]["image"]["metrics"]["roc_auc"]["value"] for n, h in document["heads"].items()
    }
    # the README's figures: the pipeline is seeded, so they are pinned, not bounded
    assert auc["bag-of-words_indication+findings"] == pytest.approx(0.9635, abs=0.002)
    assert auc["bag-of-words_indication"] == pytest.approx(0.6405, abs=0.002)
    leaky = [w for w in document["warnings"] if "not reading the X-ray" in w]
    assert len(leaky) == 1 and leaky[0].startswith("bag-of-words_indication+findings")
    assert (tmp_path / "out/plots/modality_auc.png").is_file()
