import copy
import json

import numpy as np
import pytest

import chestclip
from chestclip.evaluation.metrics import METRIC_NAMES, choose_threshold, evaluate_head, per_study
from chestclip.evaluation.schema import METRICS_SCHEMA, validate_metrics


@pytest.fixture(scope="module")
def val_test(scored):
    return scored(120, seed=11), scored(150, images_per_patient=2, seed=12)


@pytest.fixture(scope="module")
def result(val_test):
    val, test = val_test
    return evaluate_head(val, test, "score", n_boot=200, seed=0)


def _document(head_result: dict) -> dict:
    splits = {"patients": 150, "images": 300, "normal": 70, "diseased": 80}
    return {
        "schema_version": 2,
        "created": "2025-01-31T12:00:00+00:00",
        "chestclip_version": chestclip.__version__,
        "data": {"source": "/data/iu", "layout": "kaggle", "splits": {"test": splits}},
        "heads": {
            "multimodal": {
                **head_result,
                "features": "image+text",
                "text_fields": ["indication"],
                "text_leaks_findings": False,
            },
            "image": {
                **head_result,
                "features": "image",
                "text_fields": None,
                "text_leaks_findings": False,
            },
        },
        "comparisons": [
            {
                "head": "multimodal",
                "reference": "image",
                "measures": "what the text adds to the image",
                "metric": "roc_auc",
                "levels": dict.fromkeys(("image", "study"), DIFFERENCE),
            }
        ],
        "warnings": [],
    }


DIFFERENCE = {
    "value": -0.02,
    "ci_low": -0.05,
    "ci_high": 0.01,
    "n_boot": 200,
    "seed": 0,
    "alpha": 0.05,
    "unit": "patient (uid)",
    "single_class_resamples": 0,
}


def test_threshold_comes_from_validation_and_applies_to_both_levels(val_test, result):
    val, test = val_test
    assert result["threshold"] == {
        "value": choose_threshold(val["label"], val["score"]),
        "method": "youden",
        "chosen_on": "validation",
    }
    image, study = result["levels"]["image"], result["levels"]["study"]
    assert (image["n"], study["n"]) == (300, 150)
    assert image["n_patients"] == study["n_patients"] == 150
    assert set(image["metrics"]) == set(METRIC_NAMES)
    studies = per_study(test, "score")
    threshold = result["threshold"]["value"]
    assert study["confusion"][1][1] == int(
        ((studies["score"] >= threshold) & (studies["label"] == 1)).sum()
    )
    assert sum(map(sum, image["confusion"])) == 300


def test_permuting_test_labels_leaves_threshold_unchanged(val_test, result):
    val, test = val_test
    # permute the patients' labels (a study's images keep one label)
    per_uid = test.groupby("uid")["label"].first()
    shuffled = dict(zip(per_uid.index, np.random.default_rng(1).permutation(per_uid), strict=True))
    permuted = test.assign(label=test["uid"].map(shuffled))
    other = evaluate_head(val, permuted, "score", n_boot=0)
    assert other["threshold"] == result["threshold"]
    assert other["levels"]["image"]["metrics"] != result["levels"]["image"]["metrics"]
    reordered = evaluate_head(val.sample(frac=1, random_state=3), test, "score", n_boot=0)
    assert reordered["threshold"] == result["threshold"]


def test_output_is_json_ready_and_validates(result):
    document = _document(result)
    assert validate_metrics(document) == []
    round_trip = json.loads(json.dumps(document, allow_nan=False))
    assert validate_metrics(round_trip) == []
    for entry in result["levels"]["image"]["metrics"].values():
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]


def test_undefined_values_become_null_and_still_validate(val_test):
    val, test = val_test
    only_normal = test[test["label"] == 0]
    result = evaluate_head(val, only_normal, "score", n_boot=20)
    auc = result["levels"]["image"]["metrics"]["roc_auc"]
    assert auc == {"value": None, "ci_low": None, "ci_high": None}
    assert result["levels"]["image"]["bootstrap"]["single_class_resamples"] == 20
    assert validate_metrics(_document(result)) == []
    fixed = evaluate_head(val, test, "score", threshold_method="fixed", n_boot=0)
    assert fixed["threshold"] == {"value": 0.5, "method": "fixed", "chosen_on": "none"}
    assert validate_metrics(_document(fixed)) == []


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda d: d.pop("created"), "missing required key 'created'"),
        (lambda d: d.update(schema_version=1), "schema_version: 1 is not one of [2]"),
        (lambda d: d.pop("comparisons"), "missing required key 'comparisons'"),
        (lambda d: _difference(d).update(value=-1.5), "below the minimum -1"),
        (lambda d: _difference(d).pop("ci_high"), "missing required key 'ci_high'"),
        (lambda d: d["comparisons"][0].update(reference="imaging"), "'imaging' is not a head"),
        (lambda d: d.update(surprise=1), "unexpected key 'surprise'"),
        (lambda d: d["warnings"].append(3), "warnings[0]: expected string"),
        (lambda d: _image(d)["metrics"]["roc_auc"].update(value=float("nan")), "not valid JSON"),
        (lambda d: _image(d)["metrics"]["accuracy"].update(value=83.2), "above the maximum 1"),
        (lambda d: _image(d)["metrics"].pop("f1_normal"), "missing required key 'f1_normal'"),
        (lambda d: _image(d).update(confusion=[[1, 2, 3], [4, 5]]), "more than 2"),
        (lambda d: _image(d).update(n="300"), "levels.image.n: expected integer, got str"),
        (lambda d: _head(d)["threshold"].update(chosen_on="test"), "is not one of"),
        (lambda d: _head(d).update(text_leaks_findings=1), "expected boolean, got int"),
        (lambda d: _head(d).update(text_fields=["findings"]), "disagrees with text_fields"),
        (lambda d: d["data"]["splits"]["test"].update(images=-1), "below the minimum 0"),
    ],
)
def test_broken_documents_yield_problems(result, breakage, expected):
    document = copy.deepcopy(_document(result))
    breakage(document)
    problems = validate_metrics(document)
    assert any(expected in problem for problem in problems), problems


def test_schema_is_plain_json_and_rejects_non_objects():
    schema = json.loads(json.dumps(METRICS_SCHEMA))
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["properties"]["schema_version"]["enum"] == [2]
    assert validate_metrics([]) == ["(document): expected object, got list"]


def _head(document: dict) -> dict:
    return document["heads"]["multimodal"]


def _image(document: dict) -> dict:
    return _head(document)["levels"]["image"]


def _difference(document: dict) -> dict:
    comparison = document["comparisons"][0]
    comparison["levels"]["image"] = dict(comparison["levels"]["image"])
    return comparison["levels"]["image"]
