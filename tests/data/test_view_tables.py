"""The collection's view tables: only what they get right is trusted; each projection's source."""

import gzip

import pandas as pd
import pytest

from chestclip.config import PrepareConfig
from chestclip.data import prepare_dataset
from chestclip.data.openi import (
    METADATA_TABLE,
    TSNE_VIEW_TABLE,
    read_view_positions,
)
from chestclip.data.records import SourceFormatError


def test_pa_is_not_trusted_the_tsne_view_is(tmp_path):
    (tmp_path / METADATA_TABLE).write_text(
        "imageid,View Position\nCXR1_IM-1-1001,PA\nCXR1_IM-1-2001,LL\nCXR2_IM-2-1001,AP\n"
        "CXR2_IM-2-2001,RL\nCXR3_IM-3-1001,\nCXR3_IM-3-2001,PA\n"
    )
    with gzip.open(tmp_path / f"{TSNE_VIEW_TABLE}.gz", "wt") as handle:
        handle.write("imageid,tsne-view\nCXR3_IM-3-2001,PA\nCXR2_IM-2-1001,L\n")
    assert read_view_positions(tmp_path) == {
        "1_IM-1-2001": "Lateral",
        "2_IM-2-1001": "Lateral",  # the t-SNE view wins over the header
        "2_IM-2-2001": "Lateral",
        "3_IM-3-2001": "Frontal",
    }


def test_an_unreadable_table_is_one_line(tmp_path):
    (tmp_path / METADATA_TABLE).write_text("imageid,Rows\nCXR1_IM-1-1001,2048\n")
    with pytest.raises(
        SourceFormatError, match=rf"{METADATA_TABLE}: unreadable view table"
    ) as info:
        read_view_positions(tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.real_data
def test_real_metadata_views_agree_with_the_kaggle_labels(real_iu, tmp_path):
    """The real DICOM table marks 1,368 lateral films "PA": trusting it labelled 28 % of its
    images wrongly. Only its reliable values, and the study's other view, are used now."""
    summary = prepare_dataset(
        real_iu / "openi" / "NLMCXR_reports.tgz", tmp_path / "p", PrepareConfig(images=False)
    )
    images = pd.read_csv(tmp_path / "p/images.csv", dtype=str)
    kaggle = pd.read_csv(real_iu / "kaggle/indiana_projections.csv", dtype=str)
    ids = kaggle["filename"].str.removesuffix(".dcm.png")
    truth = dict(zip(ids, kaggle["projection"], strict=True))
    images["truth"] = images["image_id"].map(truth)
    for source, floor in (("metadata", 0.98), ("inferred", 0.97)):
        part = images[(images["projection_source"] == source) & images["truth"].notna()]
        accuracy = (part["projection"] == part["truth"]).mean()
        print(f"real views from {source}: {len(part)} images, accuracy {accuracy:.4f}")
        assert len(part) >= 1000 and accuracy >= floor
    assert summary.counts["views_by_source"]["metadata"] == {
        "Frontal": 417, "Lateral": 842, "unknown": 0,
    }  # fmt: skip
