"""Views from the pixels (the mediastinal ridge) and from the study's other view."""

import shutil

import numpy as np
import pandas as pd
import pytest

from chestclip.config import PrepareConfig
from chestclip.data import prepare_dataset
from chestclip.data.openi import METADATA_TABLE, TSNE_VIEW_TABLE
from chestclip.data.views import ViewGuess, complete_views, frontal_probability, infer_projection
from chestclip.phantom.acquisition import CONDITIONS, vary_acquisition
from chestclip.phantom.study import plan_study, render_study


@pytest.fixture(scope="module")
def views() -> tuple[list[np.ndarray], np.ndarray]:
    """Every view of 80 phantom studies at 64 px: images and truth (1 frontal, 0 lateral)."""
    images, truth = [], []
    for uid in range(1, 81):
        rendered = render_study(plan_study(3, uid), 64, visibility=1.0)
        images.append(rendered.frontal.pixels)
        truth.append(1)
        if rendered.lateral is not None:
            images += [rendered.lateral]
            truth.append(0)
    return images, np.array(truth)


def test_one_image(views):
    images, truth = views
    frontal, lateral = images[0], images[int(np.flatnonzero(truth == 0)[0])]
    guess = infer_projection(frontal)
    assert isinstance(guess, ViewGuess) and guess.projection == "Frontal" and guess.p_frontal > 0.9
    assert infer_projection(lateral).projection == "Lateral"
    assert infer_projection(lateral).p_frontal < 0.1
    wide = np.pad(frontal, ((0, 0), (16, 16)))  # a landscape film, any size
    assert infer_projection(wide).projection == "Frontal"
    with pytest.raises(ValueError, match=r"expected a grey image \[H, W\]"):
        infer_projection(np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize("condition", CONDITIONS)
def test_accuracy_on_varied_acquisitions(views, condition):
    images, truth = views
    rng = np.random.default_rng(7)
    p = frontal_probability(vary_acquisition(image, rng, condition) for image in images)
    accuracy = ((p >= 0.5) == (truth == 1)).mean()
    print(f"view accuracy, {condition}: {accuracy:.3f} ({len(images)} images)")
    assert accuracy >= 0.97


def test_the_study_decides_what_the_pixels_cannot():
    table = pd.DataFrame(
        {
            "uid": ["a", "a", "b", "b", "c", "d", "d", "d", "e", "e"],
            "projection": [
                "Lateral", "unknown",  # the other view is known: the opposite
                "unknown", "unknown",  # two unknown: the more frontal-looking one is frontal
                "unknown",  # alone: its own score
                "unknown", "unknown", "Frontal",  # three images: each its own score
                "unknown", "unknown",  # no pixels: stays unknown
            ],
        }
    )  # fmt: skip
    p = np.array([np.nan, 0.1, 0.3, 0.4, 0.2, 0.9, 0.1, np.nan, np.nan, np.nan])
    assert list(complete_views(table, p)) == [
        "Lateral", "Frontal", "Lateral", "Frontal", "Lateral",
        "Frontal", "Lateral", "Frontal", "unknown", "unknown",
    ]  # fmt: skip


def test_prepare_infers_views_without_a_table(phantom_openi, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(phantom_openi, source)
    (source / METADATA_TABLE).unlink()
    (source / TSNE_VIEW_TABLE).unlink()
    summary = prepare_dataset(source, tmp_path / "p", PrepareConfig(image_size=64, workers=2))
    images = pd.read_csv(tmp_path / "p/images.csv", dtype=str)
    studies = pd.read_csv(phantom_openi / "phantom_studies.csv", dtype=str)
    frontal = set(studies["frontal_image_id"])
    truth = np.where(images["image_id"].isin(frontal), "Frontal", "Lateral")
    assert set(images["projection_source"]) == {"inferred"}
    assert (images["projection"] == truth).mean() >= 0.98
    counts = summary.counts["views_by_source"]
    assert sum(counts["inferred"].values()) == len(images) and counts["none"]["unknown"] == 0


def test_frontal_only_keeps_the_inferred_frontal_views(phantom_openi, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(phantom_openi, source)
    (source / METADATA_TABLE).unlink()
    (source / TSNE_VIEW_TABLE).unlink()
    config = PrepareConfig(image_size=64, workers=2, views="frontal")
    summary = prepare_dataset(source, tmp_path / "p", config)
    images = pd.read_csv(tmp_path / "p/images.csv", dtype=str)
    assert set(images["projection"]) == {"Frontal"} and summary.counts["images_excluded_by_view"]
    assert len(np.load(tmp_path / "p/images.npy")) == len(images)
    assert list(images["row"].astype(int)) == list(range(len(images)))


def test_frontal_only_decodes_no_known_lateral(phantom_kaggle, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(phantom_kaggle, source)
    table = pd.read_csv(source / "indiana_projections.csv", dtype=str)
    first = table["uid"].iloc[0]
    table.loc[table["uid"] == first, "projection"] = "Lateral"  # a study without a frontal view
    table.to_csv(source / "indiana_projections.csv", index=False)
    config = PrepareConfig(image_size=32, workers=2, views="frontal")
    summary = prepare_dataset(source, tmp_path / "p", config)
    images = pd.read_csv(tmp_path / "p/images.csv", dtype=str)
    assert set(images["projection"]) == {"Frontal"} and first not in set(images["uid"])
    assert summary.counts["images_excluded_by_view"] == int(
        (table["projection"] != "Frontal").sum()
    )
    reasons = {(s["id"], s["reason"]) for s in summary.skipped}
    assert reasons == {(first, "no frontal images")}
