"""The per-method summary: gains over chance with intervals, and the default by measurement."""

import math

import numpy as np
import pandas as pd
import pytest

from chestclip.explain.summary import (
    SUMMARY_COLUMNS,
    choose_default_method,
    summarise,
    summarise_cascade,
    summary_table,
)


def roi_rows(method: str, energies: list[float], deletion_gain: float) -> list[dict]:
    return [
        {
            "method": method,
            "empty_map": False,
            "pointing_hit": energy > 0.5,
            "lesion_area": 0.1,
            "energy_in_lesion": energy,
            "topk_iou": energy / 2,
            "deletion_auc": 0.5 - deletion_gain,
            "random_deletion_auc": 0.5,
            "insertion_auc": 0.6,
            "random_insertion_auc": 0.55,
            "seconds": 0.01,
            "agreement": math.nan,
        }
        for energy in energies
    ]


def test_default_is_the_method_with_the_best_energy_gain_and_intervals_bracket_it():
    rng = np.random.default_rng(0)
    localising = list(0.6 + 0.05 * rng.standard_normal(30))
    chance = list(0.1 + 0.05 * rng.standard_normal(30))
    roi = pd.DataFrame(
        # "chance" has the larger deletion gain: the energy gain still decides
        roi_rows("localising", localising, 0.05) + roi_rows("chance", chance, 0.2)
    )
    summary = summarise(roi, ["chance", "localising"], {"chance": 0.9, "localising": 0.1})
    assert choose_default_method(summary["methods"]) == "localising"
    good, flat = summary["methods"]["localising"], summary["methods"]["chance"]
    assert good["energy_gain"]["ci_low"] > 0.4  # clearly above the lesion's area
    assert flat["energy_gain"]["ci_low"] < 0 < flat["energy_gain"]["ci_high"]  # chance level
    assert math.isclose(good["deletion_gain"]["value"], 0.05)
    assert good["images_with_lesion"] == 30 and good["pointing_game"] > 0.9


def test_an_unfaithful_method_is_not_the_default_even_when_it_localises_better():
    rng = np.random.default_rng(1)
    roi = pd.DataFrame(
        roi_rows("faithful", list(0.2 + 0.01 * rng.standard_normal(20)), 0.1)
        + roi_rows("decorative", list(0.6 + 0.01 * rng.standard_normal(20)), 0.0)
    )
    roi.loc[roi["method"] == "decorative", "deletion_auc"] += 0.05 * rng.standard_normal(20)
    summary = summarise(roi, ["decorative", "faithful"], {"decorative": 0.9, "faithful": 0.1})
    gain = summary["methods"]["decorative"]["deletion_gain"]
    assert gain["ci_low"] < 0 < gain["ci_high"]
    assert choose_default_method(summary["methods"]) == "faithful"


def test_without_lesion_masks_the_deletion_gain_decides():
    roi = pd.DataFrame(roi_rows("a", [0.5] * 5, 0.02) + roi_rows("b", [0.5] * 5, 0.1))
    roi["pointing_hit"] = None
    summary = summarise(roi, ["a", "b"], {"a": 0.5, "b": 0.5})
    assert summary["methods"]["a"]["energy_gain"] is None
    assert choose_default_method(summary["methods"]) == "b"


def test_summary_table_shows_every_column_with_intervals():
    roi = pd.DataFrame(roi_rows("a", [0.3, 0.4, 0.5], 0.1))
    table = summary_table(summarise(roi, ["a"], {"a": math.nan}))
    assert list(table.columns) == list(SUMMARY_COLUMNS.values())
    row = table.loc["a"]
    assert row["images"] == "3" and row["rank corr., top block randomised ↓ (95% CI)"] == "n/a"
    assert row["energy − area (95% CI)"].startswith("0.300 (")


def test_empty_maps_are_counted_and_left_out_of_the_gains():
    """A flat map has no order to delete in nor mass to place: it is no evidence either way."""
    rng = np.random.default_rng(2)
    roi = pd.DataFrame(roi_rows("a", list(0.5 + 0.01 * rng.standard_normal(12)), 0.1))
    empty = roi.index[:4]
    roi.loc[empty, "empty_map"] = True
    roi.loc[empty, ["energy_in_lesion", "deletion_auc"]] = [0.0, 0.9]  # what a flat map scores
    method = summarise(roi, ["a"], {"a": 0.1})["methods"]["a"]
    assert method["images"] == 12 and method["empty_maps"] == 4
    kept = roi.drop(index=empty)
    assert method["deletion_gain"]["value"] == pytest.approx(0.1)
    assert method["energy_gain"]["value"] == pytest.approx((kept["energy_in_lesion"] - 0.1).mean())
    assert method["deletion_auc"] == pytest.approx(0.4)
    assert summary_table(summarise(roi, ["a"], {"a": 0.1})).loc["a", "empty maps"] == "4"


def test_every_cascade_step_gets_a_mean_with_an_interval_over_images():
    rng = np.random.default_rng(3)
    values = [rng.uniform(0.6, 0.9, 30), rng.uniform(-0.2, 0.2, 30)]
    values[1][:5] = np.nan  # flat maps: no rank order
    cascade = summarise_cascade({"m": [("head", 0, values[0]), ("block 2/2", 1, values[1])]})
    head, block = cascade["m"]
    assert (head["step"], head["blocks"], head["pairs"]) == ("head", 0, 30)
    assert block["pairs"] == 25
    assert head["rank_correlation"]["ci_low"] > 0.6 and head["rank_correlation"]["ci_high"] < 0.9
    ci = block["rank_correlation"]
    assert ci["value"] == pytest.approx(np.nanmean(values[1]))
    assert ci["ci_low"] < ci["value"] < ci["ci_high"]
