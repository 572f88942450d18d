"""prepare end to end on phantoms in both layouts, including broken input and interruption."""

import shutil

import numpy as np
import pandas as pd
import pytest

from chestclip.config import PrepareConfig
from chestclip.data import PreparedData, XrayReportDataset, prepare_dataset
from chestclip.data.images import load_xray


@pytest.fixture(scope="module")
def prepared_both(phantom_openi, phantom_kaggle, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    config = PrepareConfig(image_size=48, workers=2)
    return (
        prepare_dataset(phantom_openi, out / "openi", config),
        prepare_dataset(phantom_kaggle, out / "kaggle", config),
    )


def test_layouts_give_the_same_dataset(prepared_both):
    openi, kaggle = (pd.read_csv(p.out / "studies.csv", dtype={"uid": str}) for p in prepared_both)
    assert openi.drop(columns="n_images").equals(kaggle.drop(columns="n_images"))
    assert openi["n_images"].equals(kaggle["n_images"])
    arrays = [np.load(p.out / "images.npy") for p in prepared_both]
    assert np.array_equal(*arrays)


def test_labels_match_phantom_truth(prepared_both, phantom_openi):
    truth = pd.read_csv(phantom_openi / "phantom_studies.csv", dtype={"uid": str}).set_index("uid")
    studies = pd.read_csv(prepared_both[0].out / "studies.csv", dtype={"uid": str}).set_index("uid")
    assert studies["label"].equals(truth.loc[studies.index, "label"])


def test_summary_counts(prepared_both, phantom_openi):
    counts = prepared_both[0].counts
    truth = pd.read_csv(phantom_openi / "phantom_studies.csv")
    assert counts["reports_parsed"] == counts["studies"] == len(truth)
    assert counts["normal"] == int((truth["label"] == 0).sum())
    assert counts["images"] == sum(s["images"] for s in counts["splits"].values())
    assert counts["skipped_count"] == 0 and counts["skipped"] == []
    assert sum(s["patients"] for s in counts["splits"].values()) == counts["studies"]


def test_image_array_matches_decoded_sources(prepared_both):
    data = PreparedData(prepared_both[1].out)
    assert data.array.shape == (len(data.images), 48, 48) and data.array.dtype == np.uint8
    for row in data.images.sample(8, random_state=0).itertuples():
        assert np.array_equal(data.array[row.row], load_xray(row.file, 48))


def test_no_patient_in_two_splits(prepared_both):
    images = pd.read_csv(prepared_both[0].out / "images.csv", dtype={"uid": str})
    assert images.groupby("uid")["split"].nunique().max() == 1
    assert list(images["row"]) == list(range(len(images)))


def test_dataset_items(prepared_both):
    data = PreparedData(prepared_both[0].out)
    dataset = XrayReportDataset(data, split="train")
    item = dataset[0]
    assert (
        item["image"].shape == (1, 48, 48) and 0 <= item["image"].min() <= item["image"].max() <= 1
    )
    assert item["label"] in (0, 1) and isinstance(item["text"], str)
    same_text = data.studies.groupby("text")["text_index"].nunique()
    assert same_text.max() == 1  # identical texts share one index
    frontal = XrayReportDataset(data, projection="Frontal")
    assert set(frontal.table["projection"]) == {"Frontal"}


def test_frontal_views_only(phantom_kaggle, tmp_path):
    summary = prepare_dataset(
        phantom_kaggle, tmp_path / "p", PrepareConfig(image_size=32, views="frontal")
    )
    images = pd.read_csv(tmp_path / "p/images.csv")
    assert set(images["projection"]) == {"Frontal"}
    assert summary.counts["images_excluded_by_view"] > 0


def test_reports_only(phantom_openi, tmp_path):
    summary = prepare_dataset(phantom_openi, tmp_path / "p", PrepareConfig(images=False))
    assert not (tmp_path / "p/images.npy").exists()
    assert summary.counts["images"] > 0 and set(pd.read_csv(tmp_path / "p/images.csv")["row"]) == {
        -1
    }
    assert not PreparedData(tmp_path / "p").has_images


def test_broken_inputs_are_skipped_and_listed(phantom_openi, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(phantom_openi, source)
    pngs = sorted((source / "NLMCXR_png").glob("*.png"))
    pngs[0].write_bytes(pngs[0].read_bytes()[:100])  # truncated
    pngs[1].write_bytes(b"garbage")  # not an image
    pngs[2].unlink()  # missing
    xml = sorted((source / "ecgen-radiology").glob("*.xml"))
    xml[0].write_text("<eCitation><uId id='CXR999'/>")  # malformed
    summary = prepare_dataset(source, tmp_path / "p", PrepareConfig(image_size=32, workers=2))
    skipped = {(s["kind"], s["reason"].split(":")[0]) for s in summary.skipped}
    assert ("report", "malformed XML") in skipped
    assert ("image", "undecodable image") in skipped
    assert ("image", "file missing") in skipped
    assert {s["id"] for s in summary.skipped} >= {p.stem.removeprefix("CXR") for p in pngs[:3]}
    images = pd.read_csv(tmp_path / "p/images.csv")
    assert len(images) == len(np.load(tmp_path / "p/images.npy"))
    assert not {p.stem.removeprefix("CXR") for p in pngs[:3]} & set(images["image_id"])


def test_interrupted_prepare_leaves_no_directory(phantom_openi, tmp_path, monkeypatch):
    import chestclip.data.prepare as stage

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "build_text", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(phantom_openi, tmp_path / "p", PrepareConfig(image_size=32))
    assert list(tmp_path.iterdir()) == []


def test_rerun_replaces_previous_output(phantom_openi, tmp_path):
    prepare_dataset(phantom_openi, tmp_path / "p", PrepareConfig(image_size=32))
    (tmp_path / "p/stale.txt").write_text("old")
    prepare_dataset(phantom_openi, tmp_path / "p", PrepareConfig(image_size=40))
    assert not (tmp_path / "p/stale.txt").exists()
    assert np.load(tmp_path / "p/images.npy").shape[1] == 40
    assert [p.name for p in tmp_path.iterdir()] == ["p"]


def test_a_killed_prepare_leaves_nothing_behind_after_the_next_run(phantom_openi, tmp_path):
    """SIGKILL leaves no chance to clean up: the next run removes the dead run's folder."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "import chestclip.data.prepare as stage\n"
        "from chestclip.config import PrepareConfig\n"
        "stage.decode_images = lambda *args: time.sleep(600)  # killed while decoding\n"
        "stage.prepare_dataset(sys.argv[1], sys.argv[2], PrepareConfig(image_size=32))\n"
    )
    out = tmp_path / "p"
    child = subprocess.Popen([sys.executable, "-c", script, str(phantom_openi), str(out)])
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".p.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(tmp_path.glob(".p.*.tmp")), "the child never started decoding"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert list(tmp_path.glob(".p.*.tmp"))  # what the kill left
    prepare_dataset(phantom_openi, out, PrepareConfig(image_size=32))
    assert [p.name for p in tmp_path.iterdir()] == ["p"]
