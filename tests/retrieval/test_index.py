import numpy as np
import pandas as pd
import pytest

from chestclip.errors import ChestClipError
from chestclip.retrieval import EmbeddingIndex, EmbeddingIndexError, build_index, nearest_reports


@pytest.fixture(scope="module")
def indexes(tiny_clip, small_data) -> dict[str, EmbeddingIndex]:
    model, tokenizer = tiny_clip
    return {split: build_index(model, tokenizer, small_data, split) for split in ("train", "test")}


def hand_index(split: str = "test") -> EmbeddingIndex:
    """Three studies, four images, embeddings on the axes of a 3-D space."""
    eye = np.eye(3, dtype=np.float32)
    studies = pd.DataFrame(
        {
            "uid": ["1", "2", "3"],
            "text": ["heart enlarged", "lungs clear", "lungs clear"],
            "findings": ["The heart is enlarged.", "", "NA"],  # "" and "NA" must stay text
            "impression": ["Cardiomegaly.", "Normal.", "Normal."],
        }
    )
    images = pd.DataFrame({"image_id": ["1a", "1b", "2a", "3a"], "uid": ["1", "1", "2", "3"]})
    image_embeddings = np.stack([eye[0], (eye[0] + eye[1]) / np.sqrt(2), eye[1], eye[2]])
    return EmbeddingIndex(split, images, studies, image_embeddings, eye, {"clean_mode": "safe"})


def test_build_index_encodes_every_image_and_study_of_the_split(indexes, small_data):
    index = indexes["test"]
    images = small_data.split_images("test")
    assert index.images["image_id"].tolist() == images["image_id"].tolist()
    assert sorted(index.studies["uid"]) == sorted(images["uid"].unique())
    assert index.image_embeddings.shape == (len(images), 32)
    assert index.text_embeddings.shape == (len(index.studies), 32)
    np.testing.assert_allclose(np.linalg.norm(index.image_embeddings, axis=1), 1, rtol=1e-5)
    assert index.image_texts.tolist() == images["text"].tolist()
    assert (index.meta["clean_mode"], index.meta["n_images"]) == ("safe", len(images))


def test_save_load_round_trip(indexes, tmp_path):
    for index in (indexes["test"], hand_index()):
        loaded = EmbeddingIndex.load(index.save(tmp_path / index.split / "index"))
        assert loaded.split == index.split and loaded.meta["clean_mode"] == "safe"
        pd.testing.assert_frame_equal(loaded.images, index.images)
        pd.testing.assert_frame_equal(loaded.studies, index.studies)
        np.testing.assert_array_equal(loaded.image_embeddings, index.image_embeddings)
        np.testing.assert_array_equal(loaded.text_embeddings, index.text_embeddings)


def test_save_replaces_an_existing_index_whole(tmp_path):
    path = tmp_path / "index"
    hand_index("val").save(path)
    hand_index("test").save(path)
    assert EmbeddingIndex.load(path).split == "test"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # no temporary left behind


def test_search_by_image_ranks_reports_by_similarity():
    index = hand_index()
    found = index.search_by_image(np.array([0.6, 0.8, 0.0]), k=2)
    assert found.columns.tolist() == ["rank", "uid", "similarity", "findings", "impression"]
    assert found["uid"].tolist() == ["2", "1"] and found["rank"].tolist() == [1, 2]
    np.testing.assert_allclose(found["similarity"], [0.8, 0.6], rtol=1e-6)
    assert len(index.search_by_image(np.array([1.0, 0, 0]), k=10)) == 3


def test_search_by_text_ranks_images_by_similarity(indexes):
    found = hand_index().search_by_text(np.array([1.0, 0.0, 0.0]), k=3)
    assert found.columns.tolist() == ["rank", "image_id", "uid", "similarity"]
    assert found["image_id"].tolist() == ["1a", "1b", "2a"]
    np.testing.assert_allclose(found["similarity"], [1, np.sqrt(0.5), 0], atol=1e-6)

    index = indexes["test"]
    query = index.text_embeddings[0]
    found = index.search_by_text(query, k=5)
    assert found["similarity"].is_monotonic_decreasing
    np.testing.assert_allclose(found["similarity"].iloc[0], (index.image_embeddings @ query).max())


def test_search_rejects_a_wrong_query(indexes):
    with pytest.raises(ValueError, match=r"shape \(32,\)"):
        indexes["test"].search_by_image(np.zeros(3), k=1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        indexes["test"].search_by_text(indexes["test"].text_embeddings[0], k=0)


def test_nearest_reports_draft_from_distinct_training_reports_only(indexes, small_data):
    image = indexes["test"].image_embeddings[0]
    drafts = nearest_reports(indexes["train"], image, k=4)
    train_uids = set(small_data.studies.loc[small_data.studies["split"] == "train", "uid"])
    assert len(drafts) == 4 and set(drafts["uid"]) <= train_uids
    assert drafts["similarity"].is_monotonic_decreasing and drafts["rank"].tolist() == [1, 2, 3, 4]
    assert not drafts.duplicated(["findings", "impression"]).any()
    with pytest.raises(ValueError, match="needs an index of the 'train' split, got 'test'"):
        nearest_reports(indexes["test"], image)


def test_identical_training_reports_count_once_in_the_drafts():
    drafts = nearest_reports(hand_index("train"), np.array([0.0, 0.7, 0.7]), k=3)
    assert drafts["uid"].tolist() == ["2", "3", "1"]  # "" and "NA" findings differ
    same = hand_index("train")
    same.studies.loc[2, "findings"] = ""
    assert nearest_reports(same, np.array([0.0, 0.7, 0.7]), k=3)["uid"].tolist() == ["2", "1"]


def test_loading_something_else_is_a_one_line_error(tmp_path):
    with pytest.raises(ChestClipError, match=r"not an embedding index \(missing embeddings\.npz"):
        EmbeddingIndex.load(tmp_path)
    path = hand_index().save(tmp_path / "index")
    (path / "images.csv").write_text("image_id,uid\n1a,1\n")
    with pytest.raises(EmbeddingIndexError, match=r"inconsistent index \(1 images but 4") as error:
        EmbeddingIndex.load(path)
    assert "\n" not in str(error.value)
