import numpy as np
import pandas as pd
import pytest

from chestclip.evaluation.features import encode_images, encode_texts
from chestclip.retrieval import (
    PromptSet,
    PromptTask,
    ensemble_embedding,
    evaluate_zero_shot,
    load_prompts,
    pair_probability,
    split_table,
    task_labels,
    zero_shot_auc,
    zero_shot_scores,
)


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_ensemble_is_the_renormalised_mean():
    ensemble = ensemble_embedding(np.stack([unit(1, 0, 0), unit(0, 1, 0)]))
    np.testing.assert_allclose(ensemble, unit(1, 1, 0), atol=1e-6)
    np.testing.assert_allclose(ensemble_embedding(unit(0, 0, 1)[None]), unit(0, 0, 1))


def test_pair_probability_is_a_softmax_over_scaled_similarities():
    positive, negative = unit(1, 0), unit(0, 1)
    images = np.stack([unit(1, 0.2), unit(0.2, 1), unit(1, 1)])
    p = pair_probability(images, positive, negative, logit_scale=10.0)
    assert p.shape == (3,) and p[0] > 0.5 > p[1] and p[2] == pytest.approx(0.5)
    cos_pos, cos_neg = images @ positive, images @ negative
    expected = np.exp(10 * cos_pos) / (np.exp(10 * cos_pos) + np.exp(10 * cos_neg))
    np.testing.assert_allclose(p, expected, rtol=1e-5)
    sharper = pair_probability(images, positive, negative, logit_scale=50.0)
    assert sharper[0] > p[0] and sharper[1] < p[1]


def test_ensemble_averaging_decides_against_a_single_prompt():
    # the image sits nearest ONE positive prompt, but the negative ensemble is nearer on average
    image = unit(1, 0, 0)[None]
    positive = ensemble_embedding(np.stack([unit(1, 0.1, 0), unit(-1, 1, 0)]))
    negative = ensemble_embedding(np.stack([unit(1, 0, 0.5), unit(1, 0, -0.5)]))
    assert pair_probability(image, positive, negative, 10.0)[0] < 0.5


def test_zero_shot_scores_encode_the_cleaned_prompt_ensembles(tiny_clip, small_data):
    model, tokenizer = tiny_clip
    task = load_prompts().tasks["effusion"]
    images = encode_images(model, small_data.array[:6])
    scores = zero_shot_scores(model, tokenizer, images, task, "safe")
    positive, negative = task.cleaned("safe")
    expected = pair_probability(
        images,
        ensemble_embedding(encode_texts(model, tokenizer, positive)),
        ensemble_embedding(encode_texts(model, tokenizer, negative)),
        float(model.logit_scale),
    )
    assert scores.shape == (6,) and ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_task_labels_follow_the_mesh_headings():
    tasks = load_prompts().tasks
    frame = pd.DataFrame(
        {
            "mesh": [
                "Cardiomegaly/mild",
                "Pleural Effusion/right;Opacity/lung/lower lobe/right",
                "Consolidation/lung/upper lobe/left",
                "Nodule/lung/upper lobe/left",
                "Mass/lung/hilum",
                "Airspace Disease/lung/base/bilateral",
                "pleural effusion/left",
                "Calcified Granuloma/lung;Cardiac Shadow/enlarged",
                "normal",
            ],
            "label": [1, 1, 1, 1, 1, 1, 1, 1, 0],
        }
    )
    assert task_labels(frame, tasks["cardiomegaly"]).tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert task_labels(frame, tasks["effusion"]).tolist() == [0, 1, 0, 0, 0, 0, 1, 0, 0]
    assert task_labels(frame, tasks["opacity"]).tolist() == [0, 1, 1, 0, 0, 1, 0, 0, 0]
    assert task_labels(frame, tasks["nodule"]).tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert task_labels(frame, tasks["abnormal"]).tolist() == frame["label"].tolist()
    with pytest.raises(ValueError, match="'nodule' needs a 'mesh' column"):
        task_labels(frame[["label"]], tasks["nodule"])


def test_zero_shot_auc_has_a_patient_ci_or_is_skipped_on_one_class():
    rng = np.random.default_rng(0)
    labels = np.repeat(rng.integers(0, 2, 40), 2)
    scores = np.clip(0.5 + 0.3 * (labels - 0.5) + rng.normal(0, 0.2, 80), 0, 1)
    groups = np.repeat(np.arange(40), 2)
    result = zero_shot_auc(labels, scores, groups, n_boot=200)
    auc = result["roc_auc"]
    assert result["status"] == "ok" and result["n_patients"] == 40 and result["n"] == 80
    assert 0.5 < auc["ci_low"] <= auc["value"] <= auc["ci_high"] <= 1
    skipped = zero_shot_auc(np.zeros(6, int), scores[:6], groups[:6], n_boot=10)
    assert skipped == {
        "status": "skipped", "reason": "only negative images in the split", "n": 6, "n_positive": 0,
    }  # fmt: skip


def test_evaluate_zero_shot_reports_every_task_and_skips_single_class_ones(tiny_clip, small_data):
    model, tokenizer = tiny_clip
    prompts = PromptSet(
        tasks={
            "abnormal": load_prompts().tasks["abnormal"],
            "pneumothorax": PromptTask(
                name="pneumothorax", mesh_any=["Pneumothorax"],
                positive=["Large right pneumothorax."], negative=["The lungs are clear."],
            ),
        }
    )  # fmt: skip
    table = split_table(small_data, "test")
    result = evaluate_zero_shot(model, tokenizer, small_data, prompts, "test", n_boot=50)
    assert (result["split"], result["clean_mode"]) == ("test", "safe")
    abnormal = result["tasks"]["abnormal"]
    assert abnormal["n"] == len(table) and abnormal["n_positive"] == table["label"].sum()
    assert abnormal["status"] == "ok" and abnormal["n_patients"] == table["uid"].nunique()
    assert abnormal["roc_auc"]["ci_low"] <= abnormal["roc_auc"]["value"]
    skipped = result["tasks"]["pneumothorax"]
    assert skipped["status"] == "skipped" and "only negative" in skipped["reason"]
    assert skipped["prompts"] == {
        "positive": ["large right pneumothorax"],
        "negative": ["lungs clear"],
    }
    with pytest.raises(ValueError, match=f"has 3 rows for {len(table)} test images"):
        evaluate_zero_shot(model, tokenizer, small_data, prompts, "test", np.zeros((3, 32)))
