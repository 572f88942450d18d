"""`chestclip predict` on PNG, JPEG, 16-bit PNG and DICOM (MONOCHROME1/2), mixed with a corrupt
file, on the tiny CLIP trained on phantoms (``evaluated_run`` and ``xray_files``: conftest)."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from chestclip.cli import cli
from chestclip.errors import ChestClipError
from chestclip.inference.predict import Predictor, predict_files, validation_thresholds

pytestmark = pytest.mark.slow


def test_every_format_and_the_corrupt_one(evaluated_run, xray_files, tmp_path):
    order = ["png", "jpeg", "png16", "mono2", "mono1", "corrupt"]
    results = list(predict_files(evaluated_run, [xray_files[k] for k in order], cam_dir=tmp_path))
    by_kind = dict(zip(order, results, strict=True))
    assert (
        by_kind["corrupt"].error
        and "f.png" in by_kind["corrupt"].error
        and "\n" not in by_kind["corrupt"].error
    )
    for kind in order[:-1]:
        result = by_kind[kind]
        assert result.error is None, result.error
        assert set(result.probabilities) == {
            "image"
        }  # findings-trained heads never run on new images
        assert (
            result.decisions["image"] in ("normal", "diseased")
            and result.thresholds["image"] is not None
        )
        assert result.overlay and (tmp_path / result.overlay.split("/")[-1]).is_file()
        assert len(result.drafts) == 3
    # the same pixels in any lossless container give the same probability (MONOCHROME1 re-inverted)
    reference = by_kind["png"].probabilities["image"]
    for kind in ("png16", "mono2", "mono1"):
        assert by_kind[kind].probabilities["image"] == pytest.approx(reference, abs=1e-4)
    assert by_kind["jpeg"].probabilities["image"] == pytest.approx(reference, abs=0.05)


def test_indication_enables_indication_heads(evaluated_run, xray_files):
    (result,) = predict_files(evaluated_run, [xray_files["png"]], indication="Cough and fever.")
    assert set(result.probabilities) == {"image", "multimodal_indication"}


def test_cli_json_lines_and_exit_status(evaluated_run, xray_files):
    files = [str(xray_files["png"]), str(xray_files["corrupt"])]
    result = CliRunner().invoke(cli, ["predict", "--run", str(evaluated_run), *files, "--json"])
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["file"].endswith("a.png")
    assert "f.png" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def predictor(evaluated_run):
    return Predictor.load(evaluated_run)


def test_predictor_matches_predict_files(predictor, evaluated_run, xray_files):
    image = predictor.read(xray_files["png"])
    found = predictor.predict(image, indication="Cough and fever.")
    (expected,) = predict_files(evaluated_run, [xray_files["png"]], indication="Cough and fever.")
    assert found.probabilities == pytest.approx(expected.probabilities, abs=1e-6)
    assert found.thresholds == {
        name: validation_thresholds(evaluated_run)[name] for name in found.probabilities
    }
    # the map explains the multimodal head when it runs, and its zone shares partition it
    assert found.explained_head == "multimodal_indication"
    assert (
        found.heatmap.shape == image.shape and 0 <= found.heatmap.min() <= found.heatmap.max() <= 1
    )
    assert sum(found.zone_masses.values()) == pytest.approx(1.0)
    assert [d["rank"] for d in found.drafts] == [1, 2, 3]


def test_predictor_is_safe_across_threads(predictor, xray_files):
    images = [predictor.read(xray_files[kind]) for kind in ("png", "jpeg", "mono1")]
    serial = [predictor.predict(image, drafts=0) for image in images]
    with ThreadPoolExecutor(max_workers=3) as pool:
        parallel = list(pool.map(lambda image: predictor.predict(image, drafts=0), images * 2))
    for one, other in zip(serial * 2, parallel, strict=True):
        assert other.probabilities == pytest.approx(one.probabilities, abs=1e-6)
        np.testing.assert_allclose(other.heatmap, one.heatmap, atol=1e-5)


def test_predictor_rejects_an_unknown_method(predictor, xray_files):
    with pytest.raises(ChestClipError, match="choose one of: cnn-gradcam"):
        predictor.predict(predictor.read(xray_files["png"]), method="rollout")


def test_jpeg_and_png_of_the_same_images_give_the_same_answers(
    predictor, prepared_phantoms, tmp_path
):
    """The file format must not change the answer: 24 test phantoms saved as PNG and as JPEG
    q95 get probabilities within JPEG's own loss, and no decision flips."""
    import pandas as pd
    from PIL import Image

    images = pd.read_csv(prepared_phantoms / "images.csv").query("split == 'test'").head(24)
    png, jpeg = {}, {}
    for i, file in enumerate(images["file"]):
        with Image.open(file) as image:
            grey = image.convert("L")
            grey.save(tmp_path / f"{i}.png")
            grey.save(tmp_path / f"{i}.jpg", quality=95)
        for kind, results in (("png", png), ("jpg", jpeg)):
            image = predictor.read(tmp_path / f"{i}.{kind}")
            found = predictor.predict(image, drafts=0, allow_ood=True)  # the format, not trust
            results[i] = (found.probabilities["image"], found.decisions["image"])
    gaps = [abs(png[i][0] - jpeg[i][0]) for i in png]
    assert max(gaps) < 0.02, gaps
    assert [png[i][1] for i in png] == [jpeg[i][1] for i in jpeg]


def test_overlays_of_files_with_one_name_are_all_kept(evaluated_run, xray_files, tmp_path):
    """`predict --cam-dir cams a/scan.png b/scan.png`: one overlay each, and an overlay an
    earlier run left under the first name is not overwritten."""
    from PIL import Image

    with Image.open(xray_files["png"]) as image:
        grey = np.asarray(image)
    for folder, pixels in (("a", grey), ("b", np.fliplr(grey))):
        (tmp_path / folder).mkdir()
        Image.fromarray(pixels).save(tmp_path / folder / "scan.png")
    cams = tmp_path / "cams"
    cams.mkdir()
    earlier = cams / "scan.png.cnn-gradcam.png"
    earlier.write_bytes(b"an earlier run's overlay")
    files = [tmp_path / "a/scan.png", tmp_path / "b/scan.png"]
    found = predict_files(evaluated_run, files, cam_dir=cams, drafts=0, allow_ood=True)
    overlays = [r.overlay for r in found]
    assert len(set(overlays)) == 2 and str(earlier) not in overlays
    assert earlier.read_bytes() == b"an earlier run's overlay"
    first, second = (Path(p).read_bytes() for p in overlays)
    assert first.startswith(b"\x89PNG") and second.startswith(b"\x89PNG") and first != second


def test_a_malformed_dicom_is_its_own_error_and_the_batch_goes_on(
    evaluated_run, xray_files, malformed_dicoms
):
    files = [*malformed_dicoms.values(), xray_files["png"]]
    result = CliRunner().invoke(cli, ["predict", "--run", str(evaluated_run), *map(str, files)])
    assert result.exit_code == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == len(malformed_dicoms)
    for error, path in zip(errors, malformed_dicoms.values(), strict=True):
        assert error.startswith(f"chestclip: error: {path}: malformed DICOM")
    assert result.stdout.startswith(str(xray_files["png"]))  # the last file was still predicted


def test_more_pixels_than_allowed_is_that_files_error(evaluated_run, xray_files):
    png = str(xray_files["png"])  # 128² = 16,384 pixels
    result = CliRunner().invoke(
        cli, ["predict", "--run", str(evaluated_run), png, "--max-megapixels", "0.01"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"chestclip: error: {png}: 128×128 pixels (0.0 MP) exceed")
