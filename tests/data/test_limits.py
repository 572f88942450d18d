"""Input limits: decompression bombs refused from their headers, deflated DICOM inflated only up
to a bound, the documented formats only, regular files only."""

import os
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chestclip.data.images import decode_into, load_xray
from chestclip.data.limits import DEFAULT_MAX_PIXELS
from chestclip.data.readers import ImageReadError, read_xray, read_xray_for_model
from chestclip.phantom.bombs import write_deflated_dicom_bomb, write_png_bomb

pytestmark = pytest.mark.timeout(60)

OVER_THE_CAP = 7_500  # 56 MP: past the default 50 MP, small enough to build in a second


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    return {
        "png": write_png_bomb(folder / "bomb.png", OVER_THE_CAP),
        "dicom": write_deflated_dicom_bomb(folder / "bomb.dcm", OVER_THE_CAP),
    }


READERS = {"display": read_xray, "model": lambda path: read_xray_for_model(path, 64)}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("kind", ["png", "dicom"])
def test_bombs_are_refused_from_their_headers(bombs, kind, reader):
    assert bombs[kind].stat().st_size < 400_000 and OVER_THE_CAP**2 > DEFAULT_MAX_PIXELS
    expected = f"{bombs[kind]}: 7,500×7,500 pixels (56.2 MP) exceed the limit of 50.0 MP"
    with pytest.raises(ImageReadError, match=f"^{re.escape(expected)}[^\n]*$"):
        READERS[reader](bombs[kind])


def test_deflated_dicom_is_inflated_only_up_to_the_bound(tmp_path):
    """A header that claims 100² pixels over 112 MB of inflated data; with a 1-MP cap the
    bound is 20 MB: refused after counting past it, never holding more than a chunk
    (Python-level allocations traced)."""
    liar = write_deflated_dicom_bomb(tmp_path / "liar.dcm", OVER_THE_CAP, declared=100)
    tracemalloc.start()
    try:
        with pytest.raises(ImageReadError, match="deflated data inflates to more than"):
            read_xray(liar, max_pixels=1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_the_pixel_cap_is_a_parameter(tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(np.full((1000, 1000), 90, np.uint8)).save(path)
    assert read_xray(path).shape == (1000, 1000)
    with pytest.raises(ImageReadError, match=r"1,000×1,000 pixels \(1.0 MP\) exceed the limit"):
        read_xray(path, max_pixels=999_999)
    with pytest.raises(ValueError, match="exceed the limit"):
        load_xray(str(path), 32, max_pixels=999_999)


def test_prepare_lists_a_bomb_as_refused(bombs, tmp_path):
    out = np.zeros((1, 32, 32), np.uint8)
    errors = decode_into([str(bombs["png"])], None, out, workers=1)
    assert errors[0].startswith("refused: 7,500×7,500 pixels (56.2 MP) exceed the limit")


def _other_format(path: Path, pil_format: str) -> Path:
    Image.fromarray(np.full((16, 16), 90, np.uint8)).save(path, format=pil_format)
    return path


@pytest.mark.parametrize("pil_format", ["BMP", "GIF", "TIFF", "EPS", "PPM"])
def test_only_png_jpeg_and_dicom_are_read(tmp_path, pil_format):
    """PIL opens these (and hands EPS to Ghostscript); the tool documents PNG, JPEG, DICOM."""
    path = _other_format(tmp_path / "scan.png", pil_format)
    with pytest.raises(ImageReadError, match=r"scan\.png: not a PNG, JPEG or DICOM file"):
        read_xray(path)
    with pytest.raises(ImageReadError, match=r"scan\.png: not a PNG, JPEG or DICOM file"):
        read_xray_for_model(path, 64)


def test_prepare_does_not_read_other_formats(tmp_path):
    out = np.zeros((1, 16, 16), np.uint8)
    errors = decode_into([str(_other_format(tmp_path / "x.png", "BMP"))], None, out, workers=1)
    assert errors[0].startswith("undecodable image: cannot identify image file")


@pytest.mark.timeout(20)
def test_a_symlink_to_a_device_is_refused_not_read_forever(tmp_path):
    link = tmp_path / "scan.dcm"
    link.symlink_to("/dev/zero")
    with pytest.raises(ImageReadError, match=r"scan\.dcm: not a regular file"):
        read_xray(link)


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "scan.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError, match=r"scan\.png: not a regular file"):
        read_xray_for_model(fifo, 64)


def test_a_directory_is_named_as_such(tmp_path):
    with pytest.raises(ImageReadError, match="is a directory, not an image file"):
        read_xray(tmp_path)
