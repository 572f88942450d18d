from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import (
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEGLosslessSV1,
    generate_uid,
)

from chestclip.data.images import fit_square, load_xray
from chestclip.data.readers import ImageReadError, read_xray, read_xray_for_model
from chestclip.errors import ChestClipError

RAMP_12BIT = np.linspace(0, 4095, 64).round().astype(np.uint16).reshape(8, 8)


def _image(path: Path, pixels: np.ndarray, **save) -> Path:
    Image.fromarray(pixels).save(path, **save)
    return path


def _dataset(pixels: np.ndarray, photometric: str = "MONOCHROME2", **elements) -> Dataset:
    """A DX dataset of 16-bit allocated grey pixels [H, W] or frames [F, H, W]; 12 bits stored
    unless ``elements`` say otherwise."""
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = DigitalXRayImageStorageForPresentation
    dataset.SOPInstanceUID = generate_uid()
    dataset.Modality = "DX"
    dataset.Rows, dataset.Columns = pixels.shape[-2:]
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 12, 11
    dataset.PixelRepresentation = 0
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    if pixels.ndim == 3:
        dataset.NumberOfFrames = pixels.shape[0]
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    dataset.PixelData = pixels.tobytes()
    return dataset


def _dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", **elements) -> Path:
    _dataset(pixels, photometric, **elements).save_as(path, enforce_file_format=True)
    return path


def _assert_one_line_error(path: Path, expected: str) -> None:
    with pytest.raises(ImageReadError) as caught:
        read_xray(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert expected in message


# ---- rasters --------------------------------------------------------------------------------


def test_8bit_png_passes_through(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    decoded = read_xray(_image(tmp_path / "grey.png", grey))
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, grey)


def test_16bit_png_is_scaled_to_full_range(tmp_path):
    decoded = read_xray(_image(tmp_path / "deep.png", RAMP_12BIT))
    assert decoded.min() == 0 and decoded.max() == 255
    assert np.all(np.diff(decoded.ravel().astype(int)) >= 0)


def test_rgb_and_rgba_png(tmp_path):
    rgb = np.full((4, 4, 3), 200, np.uint8)
    assert np.all(read_xray(_image(tmp_path / "rgb.png", rgb)) == 200)
    rgba = np.dstack([rgb, np.full((4, 4), 255, np.uint8)])
    rgba[0, 0, 3] = 0  # a transparent pixel composites on black
    decoded = read_xray(_image(tmp_path / "rgba.png", rgba))
    assert decoded[0, 0] == 0 and decoded[1, 1] == 200


def test_jpeg(tmp_path):
    decoded = read_xray(_image(tmp_path / "x.jpg", np.full((32, 48), 128, np.uint8)))
    assert decoded.shape == (32, 48) and abs(int(decoded.mean()) - 128) <= 2


# ---- DICOM ----------------------------------------------------------------------------------


def test_dicom_without_window_is_min_max_scaled_like_a_16bit_png(tmp_path):
    dicom = read_xray(_dicom(tmp_path / "ramp.dcm", RAMP_12BIT))
    assert dicom.dtype == np.uint8 and dicom.shape == (8, 8)
    assert np.array_equal(dicom, read_xray(_image(tmp_path / "ramp.png", RAMP_12BIT)))


def test_monochrome1_is_inverted_relative_to_monochrome2(tmp_path):
    mono2 = read_xray(_dicom(tmp_path / "m2.dcm", RAMP_12BIT, "MONOCHROME2"))
    mono1 = read_xray(_dicom(tmp_path / "m1.dcm", RAMP_12BIT, "MONOCHROME1"))
    assert mono2[0, 0] == 0 and mono2[-1, -1] == 255
    assert np.array_equal(mono1, 255 - mono2)


def test_window_clips_outside_values(tmp_path):
    pixels = np.array([[0, 1000, 1536, 2048], [2560, 3000, 4095, 4095]], np.uint16)
    path = _dicom(tmp_path / "window.dcm", pixels, WindowCenter=2048, WindowWidth=1024)
    decoded = read_xray(path)
    assert decoded[0, :3].tolist() == [0, 0, 0]  # at or below the window's bottom
    assert decoded[1, 1:].tolist() == [255, 255, 255]  # above its top
    assert abs(int(decoded[0, 3]) - 128) <= 1  # the centre is mid-grey


def test_rescale_is_applied_before_the_window(tmp_path):
    # stored 0, 500, 750, 1000, 1500 are -1000, 0, 500, 1000, 2000 after rescaling; the window
    # covers 0..1000 in rescaled units, so only a rescaled 500 (stored 750) is mid-grey
    pixels = np.array([[0, 500, 750, 1000, 1500]], np.uint16)
    path = _dicom(
        tmp_path / "rescale.dcm",
        pixels,
        RescaleSlope=2,
        RescaleIntercept=-1000,
        WindowCenter=500,
        WindowWidth=1001,
    )
    decoded = read_xray(path)
    assert decoded[0, [0, 1]].tolist() == [0, 0]
    assert abs(int(decoded[0, 2]) - 128) <= 1
    assert decoded[0, [3, 4]].tolist() == [255, 255]


def test_voi_lut_is_applied(tmp_path):
    lut = Dataset()
    lut.add_new(0x00283002, "US", [4096, 0, 12])  # LUT Descriptor: entries, first value, bits
    lut.add_new(0x00283006, "US", list(range(4095, -1, -1)))  # LUT Data: an inverting table
    path = _dicom(tmp_path / "lut.dcm", RAMP_12BIT, VOILUTSequence=[lut])
    plain = read_xray(_dicom(tmp_path / "plain.dcm", RAMP_12BIT))
    assert np.array_equal(read_xray(path), 255 - plain)


def test_signed_pixels_keep_their_order(tmp_path):
    pixels = np.linspace(-2000, 2000, 16).round().astype(np.int16).reshape(4, 4)
    path = _dicom(tmp_path / "signed.dcm", pixels, BitsStored=16, HighBit=15, PixelRepresentation=1)
    expected = np.round((pixels + 2000) / 4000 * 255).astype(np.uint8)
    assert np.array_equal(read_xray(path), expected)


def test_multi_frame_reads_the_first_frame(tmp_path):
    frames = np.stack([RAMP_12BIT, RAMP_12BIT[::-1]])
    decoded = read_xray(_dicom(tmp_path / "frames.dcm", frames))
    assert np.array_equal(decoded, read_xray(_dicom(tmp_path / "first.dcm", RAMP_12BIT)))


def test_dicom_is_detected_by_content_not_extension(tmp_path):
    expected = read_xray(_dicom(tmp_path / "scan.dcm", RAMP_12BIT))
    assert np.array_equal(read_xray(_dicom(tmp_path / "scan", RAMP_12BIT)), expected)
    assert np.array_equal(read_xray(_dicom(tmp_path / "scan.png", RAMP_12BIT)), expected)


def test_dicom_without_preamble_is_read_when_named_dcm(tmp_path):
    dataset = _dataset(RAMP_12BIT)
    del dataset.file_meta  # a bare dataset, as some old modalities write
    bare = tmp_path / "bare.dcm"
    dataset.save_as(bare, implicit_vr=False, little_endian=True)
    assert bare.read_bytes()[128:132] != b"DICM"
    assert np.array_equal(read_xray(bare), read_xray(_dicom(tmp_path / "full.dcm", RAMP_12BIT)))


# ---- errors ---------------------------------------------------------------------------------


def test_error_is_a_chestclip_error():
    assert issubclass(ImageReadError, ChestClipError)


def test_missing_file(tmp_path):
    _assert_one_line_error(tmp_path / "absent.png", "file not found")


def test_empty_file(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    _assert_one_line_error(tmp_path / "empty.dcm", "empty file")


@pytest.mark.parametrize("name", ["notes.png", "notes.dcm"])
def test_text_file_is_not_an_image(tmp_path, name):
    (tmp_path / name).write_text("Findings: no acute disease.\nImpression: normal chest.\n")
    _assert_one_line_error(tmp_path / name, "not a PNG, JPEG or DICOM file")


@pytest.mark.parametrize(
    ("name", "keep"), [("cut.png", 0.5), ("cut.jpg", 0.5), ("head.png", 0.02), ("stub.png", 0.002)]
)
def test_truncated_raster(tmp_path, name, keep):
    noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    whole = _image(tmp_path / f"whole{Path(name).suffix}", noise).read_bytes()
    (tmp_path / name).write_bytes(whole[: int(len(whole) * keep)])
    _assert_one_line_error(tmp_path / name, "truncated or corrupt")


def test_dicom_without_pixel_data(tmp_path):
    dataset = _dataset(RAMP_12BIT)
    del dataset.PixelData
    dataset.save_as(tmp_path / "report.dcm", enforce_file_format=True)
    _assert_one_line_error(tmp_path / "report.dcm", "no pixel data")


def test_colour_dicom_is_rejected(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    path = _dicom(
        tmp_path / "photo.dcm",
        rgb,
        "RGB",
        SamplesPerPixel=3,
        PlanarConfiguration=0,
        BitsAllocated=8,
        BitsStored=8,
        HighBit=7,
    )
    _assert_one_line_error(path, "unsupported DICOM photometric interpretation 'RGB'")


@pytest.mark.skipif(
    get_decoder(JPEGLosslessSV1).is_available, reason="a JPEG Lossless decoder is installed"
)
def test_compressed_dicom_without_decoder_names_syntax_and_package(tmp_path):
    dataset = _dataset(RAMP_12BIT)
    dataset.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    dataset.PixelData = encapsulate([b"\xff\xd8\xff\xc3 not decoded here \xff\xd9"])
    dataset["PixelData"].VR = "OB"
    dataset.save_as(tmp_path / "lossless.dcm", enforce_file_format=True)
    _assert_one_line_error(tmp_path / "lossless.dcm", "JPEG Lossless")
    _assert_one_line_error(tmp_path / "lossless.dcm", "pylibjpeg")


def test_dicom_with_short_pixel_data(tmp_path):
    dataset = _dataset(RAMP_12BIT)
    dataset.PixelData = RAMP_12BIT.tobytes()[:64]
    dataset.save_as(tmp_path / "short.dcm", enforce_file_format=True)
    _assert_one_line_error(tmp_path / "short.dcm", "undecodable DICOM pixel data")


# ---- model input ----------------------------------------------------------------------------


def test_for_model_dicom_is_square_uint8(tmp_path):
    path = _dicom(tmp_path / "wide.dcm", np.tile(RAMP_12BIT, (1, 2)))  # [8, 16]
    prepared = read_xray_for_model(path, 32, "pad")
    assert prepared.shape == (32, 32) and prepared.dtype == np.uint8
    assert np.array_equal(prepared, fit_square(read_xray(path), 32, "pad"))
    assert prepared[:8].max() == 0 and prepared[16].min() > 0  # black padding above the image


def test_for_model_raster_matches_the_training_decoder(tmp_path):
    noise = np.random.default_rng(1).integers(0, 255, (200, 300), dtype=np.uint8)
    path = _image(tmp_path / "big.jpg", noise)
    prepared = read_xray_for_model(path, 48, "stretch")
    assert prepared.shape == (48, 48) and prepared.dtype == np.uint8
    assert np.array_equal(prepared, load_xray(str(path), 48, "stretch"))


def test_for_model_reports_unreadable_files(tmp_path):
    with pytest.raises(ImageReadError, match=r"absent\.dcm: file not found"):
        read_xray_for_model(tmp_path / "absent.dcm", 32, "pad")


@pytest.mark.parametrize(
    "kind",
    [
        "slope-text",
        "window-text",
        "short-voi-lut",
        "short-modality-lut",
        "one-value-lut-descriptor",
    ],
)
def test_malformed_dicom_attributes_are_the_files_one_line_error(malformed_dicoms, kind):
    """Text in Rescale Slope or Window Center, a LUT shorter than its descriptor, a descriptor
    of one value: pydicom raises TypeError, IndexError or struct.error deep in its pipeline."""
    for read in (read_xray, lambda path: read_xray_for_model(path, 32)):
        with pytest.raises(ImageReadError) as caught:
            read(malformed_dicoms[kind])
        message = str(caught.value)
        assert message.startswith(f"{malformed_dicoms[kind]}: malformed DICOM")
        assert "\n" not in message
