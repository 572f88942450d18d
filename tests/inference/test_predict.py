"""`chestclip predict` on PNG, JPEG, 16-bit PNG and DICOM (MONOCHROME1/2), mixed with a corrupt
file, on the tiny CLIP trained on phantoms."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from chestclip.cli import cli
from chestclip.config import load_run_config
from chestclip.evaluation.evaluate import evaluate
from chestclip.inference.predict import predict_files
from chestclip.retrieval.stage import run_retrieval

pytestmark = pytest.mark.slow


def write_dicom(path, pixels: np.ndarray, photometric: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality, ds.PatientID = "CR", "phantom"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture(scope="module")
def predict_run(probed_run, prepared_phantoms, tmp_path_factory):
    run = tmp_path_factory.mktemp("predict") / "run"
    shutil.copytree(probed_run[0], run)
    evaluate(run, prepared_phantoms, load_run_config("tiny"), n_boot=0)
    run_retrieval(run, prepared_phantoms)
    return run


@pytest.fixture(scope="module")
def files(prepared_phantoms, tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    images = pd.read_csv(prepared_phantoms / "images.csv").query(
        "projection == 'Frontal' and split == 'test'"
    )
    grey = np.asarray(Image.open(images["file"].iloc[0]).convert("L"))
    paths = {
        "png": folder / "a.png",
        "jpeg": folder / "b.jpg",
        "png16": folder / "c.png",
        "mono2": folder / "d.dcm",
        "mono1": folder / "e",
        "corrupt": folder / "f.png",
    }
    Image.fromarray(grey).save(paths["png"])
    Image.fromarray(grey).save(paths["jpeg"], quality=95)
    Image.fromarray(grey.astype(np.uint16) * 16).save(paths["png16"])
    write_dicom(paths["mono2"], grey.astype(np.uint16) * 16, "MONOCHROME2")
    write_dicom(paths["mono1"], (255 - grey.astype(np.uint16)) * 16, "MONOCHROME1")  # no extension
    paths["corrupt"].write_bytes(paths["png"].read_bytes()[:200])
    return paths


def test_every_format_and_the_corrupt_one(predict_run, files, tmp_path):
    order = ["png", "jpeg", "png16", "mono2", "mono1", "corrupt"]
    results = list(predict_files(predict_run, [files[k] for k in order], cam_dir=tmp_path))
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


def test_indication_enables_indication_heads(predict_run, files):
    (result,) = predict_files(predict_run, [files["png"]], indication="Cough and fever.")
    assert set(result.probabilities) == {"image", "multimodal_indication"}


def test_cli_json_lines_and_exit_status(predict_run, files):
    result = CliRunner().invoke(
        cli,
        ["predict", "--run", str(predict_run), str(files["png"]), str(files["corrupt"]), "--json"],
    )
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["file"].endswith("a.png")
    assert "f.png" in result.stderr and len(result.stderr.strip().splitlines()) == 1
