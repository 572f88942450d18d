"""Shared fixtures: small phantom datasets in both layouts, and the real reports when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED_IU = Path(os.environ.get("CHESTCLIP_SHARED_DATA", PROJECT.parent / "shared/data/iu-xray"))


@pytest.fixture(scope="session")
def real_iu() -> Path:
    """The real IU X-Ray reports (../shared/data/iu-xray); the test is skipped when absent."""
    if not (SHARED_IU / "kaggle/indiana_reports.csv").is_file():
        pytest.skip(f"real IU X-Ray reports not found at {SHARED_IU}")
    return SHARED_IU


@pytest.fixture
def tcp_port() -> int:
    """A free loopback port for a distributed test's rendezvous."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def phantom_openi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chestclip.phantom import generate_phantoms

    out = tmp_path_factory.mktemp("phantom") / "openi"
    generate_phantoms(out, studies=40, image_size=96, layout="openi", seed=0)
    return out


@pytest.fixture(scope="session")
def phantom_kaggle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from chestclip.phantom import generate_phantoms

    out = tmp_path_factory.mktemp("phantom") / "kaggle"
    generate_phantoms(out, studies=40, image_size=96, layout="kaggle", seed=0)
    return out


@pytest.fixture(scope="session")
def prepared_phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 phantom studies with clearly visible lesions (visibility 3) prepared at 64 px: what a
    tiny CLIP needs to learn image-report alignment in seconds on a CPU."""
    from chestclip.config import PrepareConfig
    from chestclip.data import prepare_dataset
    from chestclip.phantom import generate_phantoms

    root = tmp_path_factory.mktemp("prepared")
    generate_phantoms(
        root / "source", studies=600, image_size=128, layout="kaggle", seed=1, visibility=3.0
    )
    config = PrepareConfig(image_size=64, workers=2)
    return prepare_dataset(root / "source", root / "prepared", config).out


@pytest.fixture(scope="session")
def trained_run(prepared_phantoms: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tiny CLIP pre-trained for 12 epochs on ``prepared_phantoms`` (about 20 s on 2 cores)."""
    from chestclip.config import load_run_config
    from chestclip.training.pretrain import pretrain

    config = load_run_config("tiny", ["pretrain.epochs=12"])
    return pretrain(prepared_phantoms, tmp_path_factory.mktemp("run"), config)


@pytest.fixture(scope="session")
def probed_run(trained_run, prepared_phantoms: Path):
    """``trained_run`` with its multimodal, image-only and text-only heads trained."""
    from chestclip.config import load_run_config
    from chestclip.training.probe import probe

    heads = probe(trained_run.run, prepared_phantoms, load_run_config("tiny"))
    return trained_run.run, {h.name: h for h in heads}


def write_dicom(path: Path, pixels, photometric: str) -> None:
    """A 12-bit-stored, 16-bit-allocated greyscale DICOM of ``pixels`` [H, W]."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

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


def _raw(tag: int, vr: str, value: bytes):
    """An element written byte for byte, however wrong (pydicom validates what it encodes)."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    return RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _lut(descriptor: list[int], entries: int):
    import struct

    from pydicom.dataset import Dataset

    item = Dataset()
    item[0x00283002] = _raw(0x00283002, "US", struct.pack(f"<{len(descriptor)}H", *descriptor))
    item[0x00283006] = _raw(0x00283006, "OW", struct.pack(f"<{entries}H", *range(entries)))
    return item


# the DICOM attributes a broken exporter writes, each raising inside pydicom's pixel pipeline
MALFORMED_DICOM = {
    "slope-text": {"RescaleSlope": _raw(0x00281053, "DS", b"abc "),
                   "RescaleIntercept": _raw(0x00281052, "DS", b"0 ")},
    "window-text": {"WindowCenter": _raw(0x00281050, "DS", b"wide"),
                    "WindowWidth": _raw(0x00281051, "DS", b"400 ")},
    "short-voi-lut": {"VOILUTSequence": [_lut([4096, 0, 12], 10)]},
    "short-modality-lut": {"ModalityLUTSequence": [_lut([4096, 0, 12], 10)]},
    "one-value-lut-descriptor": {"VOILUTSequence": [_lut([4096], 4096)]},
}  # fmt: skip


@pytest.fixture(scope="session")
def malformed_dicoms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small DICOM per MALFORMED_DICOM attribute set, named ``<kind>.dcm``."""
    import numpy as np
    from pydicom import dcmread

    folder = tmp_path_factory.mktemp("malformed")
    paths = {}
    for kind, elements in MALFORMED_DICOM.items():
        path = paths[kind] = folder / f"{kind}.dcm"
        write_dicom(path, np.arange(64 * 64).reshape(64, 64) % 4096, "MONOCHROME2")
        dataset = dcmread(path)
        for keyword, value in elements.items():
            if isinstance(value, list):
                setattr(dataset, keyword, value)
            else:
                dataset[value.tag] = value
        dataset.save_as(path, enforce_file_format=True)
    return paths


@pytest.fixture(scope="session")
def evaluated_run(probed_run, prepared_phantoms: Path, tmp_path_factory: pytest.TempPathFactory):
    """A copy of ``probed_run`` with validation thresholds (`evaluate`) and the training index
    (`retrieve`): everything `predict` and `serve` use."""
    import shutil

    from chestclip.config import load_run_config
    from chestclip.evaluation.evaluate import evaluate
    from chestclip.retrieval.stage import run_retrieval

    run = tmp_path_factory.mktemp("evaluated") / "run"
    shutil.copytree(probed_run[0], run)
    evaluate(run, prepared_phantoms, load_run_config("tiny"), n_boot=0)
    run_retrieval(run, prepared_phantoms)
    return run


@pytest.fixture(scope="session")
def xray_files(prepared_phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One frontal test phantom as PNG, JPEG, 16-bit PNG, DICOM MONOCHROME2, DICOM MONOCHROME1
    (no extension), and a truncated PNG."""
    import numpy as np
    import pandas as pd
    from PIL import Image

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
    write_dicom(paths["mono1"], (255 - grey.astype(np.uint16)) * 16, "MONOCHROME1")
    paths["corrupt"].write_bytes(paths["png"].read_bytes()[:200])
    return paths


@pytest.fixture(scope="session")
def lateral_only(prepared_phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``prepared_phantoms`` as if no image were frontal (views unknown, then inferred lateral)."""
    import shutil

    import pandas as pd

    copy = tmp_path_factory.mktemp("lateral") / "prepared"
    shutil.copytree(prepared_phantoms, copy)
    images = pd.read_csv(copy / "images.csv", dtype=str, keep_default_na=False)
    images.assign(projection="Lateral").to_csv(copy / "images.csv", index=False)
    return copy


@pytest.fixture(scope="session")
def real_reports_fixture(real_iu: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `chestclip download iu-xray` would leave for 200 of the real reports (no view table),
    with 64-px phantom images (`chestclip phantom --reports`, views drawn as the Kaggle table
    says); the phantom truth beside it. Skipped when the real reports are absent."""
    from chestclip.phantom.real_reports import generate_from_reports

    reports = real_iu / "openi/NLMCXR_reports.tgz"
    if not reports.is_file():
        pytest.skip(f"{reports} not found")
    projections = real_iu / "kaggle/indiana_projections.csv"
    out = tmp_path_factory.mktemp("real-reports") / "iu-xray"
    generate_from_reports(
        reports,
        out,
        studies=200,
        image_size=64,
        projections=projections if projections.is_file() else None,
    )
    return out
