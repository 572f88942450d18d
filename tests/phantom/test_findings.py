"""Lesions: label mix, masks against the truth file, side convention and visibility."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from chestclip.phantom import PhantomSummary
from chestclip.phantom.findings import draw_frontal
from chestclip.phantom.study import plan_study

SIZE = 96


def truth_of(summary: PhantomSummary) -> pd.DataFrame:
    """The dataset's truth rows (ints for the box)."""
    return pd.read_csv(summary.out / "phantom_truth.csv", keep_default_na=False)


def studies_of(summary: PhantomSummary) -> pd.DataFrame:
    """The dataset's study table, empty cells as empty strings."""
    return pd.read_csv(summary.out / "phantom_studies.csv", dtype=str, keep_default_na=False)


def load(summary: PhantomSummary, image_id: str) -> np.ndarray:
    """A written openi image ``[H, W]`` uint8."""
    return np.asarray(Image.open(summary.out / "NLMCXR_png" / f"CXR{image_id}.png"))


def mask_of(summary: PhantomSummary, image_id: str) -> np.ndarray:
    """A written lesion mask ``[H, W]`` bool."""
    mask = np.asarray(Image.open(summary.out / "masks" / f"{image_id}_mask.png"))
    assert set(np.unique(mask)) <= {0, 255}
    return mask == 255


def test_about_a_third_of_studies_are_normal() -> None:
    plans = [plan_study(0, uid) for uid in range(1, 201)]
    normal = sum(plan.label == 0 for plan in plans) / len(plans)
    assert 0.27 <= normal <= 0.43
    counts = pd.Series([len(plan.findings) for plan in plans if plan.findings]).value_counts()
    assert counts[1] > counts[2] > 0 and set(counts.index) == {1, 2}
    kinds = {finding.kind for plan in plans for finding in plan.findings}
    assert kinds == {"cardiomegaly", "effusion", "opacity", "nodule"}


def test_every_abnormal_frontal_has_truth_rows_and_a_mask(openi: PhantomSummary) -> None:
    studies, truth = studies_of(openi), truth_of(openi)
    abnormal = studies[studies.label == "1"]
    assert set(truth.image_id) == set(abnormal.frontal_image_id)
    masks = {p.name for p in (openi.out / "masks").glob("*_mask.png")}
    assert masks == {f"{image_id}_mask.png" for image_id in abnormal.frontal_image_id}
    drawn = truth.groupby("uid").finding.apply(sorted)
    for uid, findings in zip(abnormal.uid, abnormal.findings, strict=True):
        assert drawn[int(uid)] == sorted(findings.split(";"))


def test_normal_studies_have_no_truth(openi: PhantomSummary) -> None:
    studies, truth = studies_of(openi), truth_of(openi)
    normal = studies[studies.label == "0"]
    assert len(normal) > 0
    assert not set(normal.uid.astype(int)) & set(truth.uid)
    for image_id in normal.frontal_image_id:
        assert not (openi.out / "masks" / f"{image_id}_mask.png").exists()


def test_mask_matches_truth_boxes_and_lies_in_the_body(openi: PhantomSummary) -> None:
    for image_id, rows in truth_of(openi).groupby("image_id"):
        mask = mask_of(openi, image_id)
        assert mask.shape == (SIZE, SIZE)
        covered = np.zeros_like(mask)
        for row in rows.itertuples():
            assert 0 <= row.x0 < row.x1 <= SIZE and 0 <= row.y0 < row.y1 <= SIZE
            box = mask[row.y0 : row.y1, row.x0 : row.x1]
            # the box is tight: the mask reaches each of its four edges
            assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any()
            covered[row.y0 : row.y1, row.x0 : row.x1] = True
        assert not (mask & ~covered).any()
        if len(rows) == 1:
            ys, xs = np.nonzero(mask)
            row = rows.iloc[0]
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (
                row.x0,
                row.y0,
                row.x1,
                row.y1,
            )
        # the background outside the body is near black; lesions are never drawn there
        image = load(openi, image_id)
        background = max(np.percentile(image[:4, :4], 99), np.percentile(image[:4, -4:], 99))
        assert np.mean(image[mask] > background + 10) > 0.99


def test_patient_right_is_on_the_image_left(openi: PhantomSummary) -> None:
    truth = truth_of(openi)
    sided = truth[truth.side != "none"]
    assert set(sided.side) == {"right", "left"}
    for row in sided.itertuples():
        center = (row.x0 + row.x1) / 2
        assert center < SIZE / 2 if row.side == "right" else center > SIZE / 2
    hearts = truth[truth.finding == "cardiomegaly"]
    assert (hearts.side == "none").all() and (hearts.zone == "cardiac").all()
    # the heart sits to the image's right of the midline (the patient's left)
    assert ((hearts.x0 + hearts.x1) / 2 > SIZE / 2).all()


def test_zones_go_from_apex_to_base(openi: PhantomSummary) -> None:
    truth = truth_of(openi)
    centers = truth.assign(y=(truth.y0 + truth.y1) / 2).groupby("zone").y.mean()
    present = [zone for zone in ("upper", "middle", "lower", "costophrenic") if zone in centers]
    assert len(present) >= 3
    assert list(centers[present]) == sorted(centers[present])


@pytest.mark.parametrize("uid", range(1, 13))
def test_visibility_zero_is_the_study_without_lesions(uid: int) -> None:
    plan = plan_study(5, uid)
    unseen = draw_frontal(plan.frontal, plan.findings, SIZE, 0.0, plan.frontal_noise_seed)
    healthy = draw_frontal(plan.frontal, (), SIZE, 1.0, plan.frontal_noise_seed)
    assert unseen.lesions == ()
    np.testing.assert_array_equal(unseen.pixels, healthy.pixels)
    shown = draw_frontal(plan.frontal, plan.findings, SIZE, 1.0, plan.frontal_noise_seed)
    assert len(shown.lesions) == len(plan.findings)
    assert (shown.pixels != healthy.pixels).any() == bool(plan.findings)


def test_visibility_zero_dataset_differs_only_at_the_lesions(
    openi: PhantomSummary, invisible: PhantomSummary
) -> None:
    assert len(truth_of(invisible)) == 0
    assert not (invisible.out / "masks").exists() or not any((invisible.out / "masks").iterdir())
    studies = studies_of(openi)
    assert studies.equals(studies_of(invisible))
    for study in studies.itertuples():
        shown, unseen = load(openi, study.frontal_image_id), load(invisible, study.frontal_image_id)
        if study.label == "0":
            np.testing.assert_array_equal(shown, unseen)
        else:
            near = ndimage.binary_dilation(mask_of(openi, study.frontal_image_id), iterations=6)
            assert (shown != unseen)[near].any()
            np.testing.assert_array_equal(shown[~near], unseen[~near])
        if study.lateral_image_id:
            lateral = study.lateral_image_id
            np.testing.assert_array_equal(load(openi, lateral), load(invisible, lateral))


def test_higher_visibility_means_larger_and_brighter_lesions() -> None:
    plan = next(p for p in (plan_study(1, uid) for uid in range(1, 50)) if p.findings)
    healthy = draw_frontal(plan.frontal, (), 128, 1.0, plan.frontal_noise_seed).pixels
    change = []
    for visibility in (0.25, 1.0, 2.0):
        image = draw_frontal(plan.frontal, plan.findings, 128, visibility, plan.frontal_noise_seed)
        change.append(np.abs(image.pixels.astype(int) - healthy).sum())
    assert change[0] < change[1] < change[2]
