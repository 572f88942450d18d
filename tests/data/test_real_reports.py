"""prepare on the REAL IU X-Ray reports (../shared/data), reports only; skipped when absent."""

import pandas as pd
import pytest

from chestclip.config import PrepareConfig
from chestclip.data import prepare_dataset

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def prepared_real(real_iu, tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    config = PrepareConfig(images=False)
    openi = prepare_dataset(real_iu / "openi/NLMCXR_reports.tgz", out / "openi", config)
    kaggle = prepare_dataset(real_iu / "kaggle", out / "kaggle", config)
    return openi, kaggle


def test_openi_archive_counts(prepared_real):
    counts = prepared_real[0].counts
    assert counts["layout"] == "openi"
    # 3,955 reports, 95 of them never indexed (MeSH "No Indexing": no label), 3 of those and
    # 101 others without images
    assert counts["reports_parsed"] == 3860
    assert counts["reports_with_images"] == 3759
    assert counts["images"] == 7298
    assert (counts["normal"], counts["diseased"]) == (1379, 2380)
    # their 172 images are skipped and counted, as in the Kaggle layout
    assert counts["skipped_by_reason"] == {
        "no images": 101, "not indexed": 95, "report skipped, not indexed": 172,
    }  # fmt: skip


def test_kaggle_counts(prepared_real):
    counts = prepared_real[1].counts
    assert counts["layout"] == "kaggle"
    assert counts["reports_parsed"] == counts["studies"] == 3759
    assert (counts["normal"], counts["diseased"]) == (1379, 2380)
    # the 92 never-indexed reports with images, and their 172 images, are skipped and counted
    assert counts["skipped_by_reason"] == {"report skipped, not indexed": 172, "not indexed": 92}


def test_layouts_agree_on_every_label_and_split(prepared_real):
    openi = pd.read_csv(prepared_real[0].out / "studies.csv", dtype={"uid": str}).set_index("uid")
    kaggle = pd.read_csv(prepared_real[1].out / "studies.csv", dtype={"uid": str}).set_index("uid")
    assert set(openi.index) == set(kaggle.index)
    assert openi["label"].equals(kaggle.loc[openi.index, "label"])
    assert openi["split"].equals(kaggle.loc[openi.index, "split"])


def test_real_split_sizes_and_no_leak(prepared_real):
    studies = pd.read_csv(prepared_real[0].out / "studies.csv", dtype={"uid": str})
    images = pd.read_csv(prepared_real[0].out / "images.csv", dtype={"uid": str})
    assert studies["split"].value_counts().to_dict() == {"train": 2631, "test": 565, "val": 563}
    assert images.groupby("uid")["split"].nunique().max() == 1
    assert images["uid"].map(studies.set_index("uid")["split"]).equals(images["split"])


def test_real_cleaning_keeps_negations_only_in_safe_mode(real_iu, prepared_real, tmp_path):
    config = PrepareConfig(images=False, clean="paper")
    paper = prepare_dataset(real_iu / "kaggle", tmp_path / "paper", config)
    paper_texts = pd.read_csv(paper.out / "studies.csv", keep_default_na=False)["text"]
    assert not paper_texts.str.contains(r"\bno\b").any()
    assert not paper_texts.str.contains(r"\bx+\b").any()
    safe_texts = pd.read_csv(prepared_real[1].out / "studies.csv", keep_default_na=False)["text"]
    assert safe_texts.str.contains(r"\bno pneumothorax\b").sum() > 500
