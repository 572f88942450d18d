"""Read any X-ray file a user hands to ``chestclip predict`` (PNG, JPEG or other PIL raster, DICOM)
into a display-ready uint8 grey image, or fail with one line naming the file and the problem.

DICOM display pipeline (PS3.3 C.11), all steps but the last two done by pydicom:
stored values → Modality LUT or Rescale Slope/Intercept → VOI LUT, else Window Center/Width (first
of several), else min-max over the image → scale that range to 0..255 → invert MONOCHROME1 so that
bone is bright. The min-max fallback is the rule ``to_grey`` applies to 16-bit PNGs, so a DICOM
without a window and its 16-bit PNG export give the same image (no percentile clipping: nothing
is thrown away that training images kept). Multi-frame files: the first frame is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.datadict import dictionary_has_tag
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, get_decoder, pixel_array
from pydicom.pixels.processing import apply_voi, apply_windowing
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from chestclip.data.images import ResizeMode, fit_square, load_xray, to_grey
from chestclip.errors import ChestClipError

_DICOM_SUFFIXES = (".dcm", ".dicom")
_RASTER_SIGNATURES = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG"}
_GREYSCALE = ("MONOCHROME1", "MONOCHROME2")
_PIXEL_DATA = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_RASTER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
# the transfer syntax a file without file meta was written in, by (implicit VR, little endian)
_ENCODINGS = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}


class ImageReadError(ChestClipError):
    """An X-ray file that cannot be read; the message is one line: ``<file>: <problem>``."""


def read_xray(path: str | Path) -> np.ndarray:
    """An X-ray file (PNG, JPEG, any PIL raster, or DICOM, told apart by content) → uint8 [H, W],
    display-ready (bone bright). Raises ImageReadError."""
    path = Path(path)
    if _is_dicom(path):
        return _read_dicom(path)
    with _raster_errors(path), Image.open(path) as image:
        return to_grey(image)


def read_xray_for_model(path: str | Path, size: int, resize: ResizeMode = "pad") -> np.ndarray:
    """An X-ray file → uint8 [size, size], prepared exactly as training images were: rasters go
    through ``load_xray`` itself, DICOMs through ``read_xray`` then ``fit_square``. Raises
    ImageReadError."""
    path = Path(path)
    if _is_dicom(path):
        return fit_square(_read_dicom(path), size, resize)
    with _raster_errors(path):
        return load_xray(str(path), size, resize)


def _error(path: Path, problem: object) -> ImageReadError:
    return ImageReadError(f"{path}: {' '.join(str(problem).split())}")  # one line, always


def _is_dicom(path: Path) -> bool:
    """True for DICOM (``DICM`` at byte 128, or a .dcm file that only pydicom can read), False for
    a raster PIL can open; raises ImageReadError for a missing, empty or unrecognised file."""
    try:
        with path.open("rb") as handle:
            header = handle.read(132)
    except FileNotFoundError:
        raise _error(path, "file not found") from None
    except IsADirectoryError:
        raise _error(path, "is a directory, not an image file") from None
    except OSError as err:
        raise _error(path, f"cannot open: {err.strerror or err}") from None
    if not header:
        raise _error(path, "empty file")
    if header[128:132] == b"DICM":
        return True
    try:
        Image.open(path).close()
        return False
    except UnidentifiedImageError:
        pass
    except _RASTER_ERRORS as err:
        raise _error(path, f"corrupt image ({err})") from None
    kind = next((name for sig, name in _RASTER_SIGNATURES.items() if header.startswith(sig)), None)
    if kind:
        raise _error(path, f"truncated or corrupt {kind} file")
    if path.suffix.lower() in _DICOM_SUFFIXES:
        return True  # a DICOM written without preamble; _read_dicom rejects what is not
    raise _error(path, "not a PNG, JPEG or DICOM file")


@contextmanager
def _raster_errors(path: Path) -> Iterator[None]:
    """Turn PIL's decoding errors (truncated or corrupt data) into one ImageReadError."""
    try:
        yield
    except _RASTER_ERRORS as err:
        raise _error(path, f"truncated or corrupt image ({err})") from None


def _read_dicom(path: Path) -> np.ndarray:
    """A DICOM file → display-ready uint8 [H, W] (see the module docstring for the pipeline)."""
    try:
        dataset = pydicom.dcmread(path, force=True)
    except (InvalidDicomError, OSError, EOFError, ValueError) as err:
        raise _error(path, f"corrupt DICOM file ({err})") from None
    if not any(dictionary_has_tag(element.tag) for element in dataset.elements()):
        # a forced read turns any bytes into a "dataset" of unknown private tags
        raise _error(path, "not a PNG, JPEG or DICOM file")
    if not any(keyword in dataset for keyword in _PIXEL_DATA):
        raise _error(path, "DICOM file has no pixel data (not an image, e.g. a report or SR)")
    photometric = dataset.get("PhotometricInterpretation", "(missing)")
    if photometric not in _GREYSCALE:
        raise _error(
            path,
            f"unsupported DICOM photometric interpretation {photometric!r}: "
            "only greyscale MONOCHROME1/MONOCHROME2 X-rays can be read",
        )
    _check_decodable(path, dataset)
    try:
        stored = pixel_array(dataset, index=0)  # decodes the first frame only
        values = apply_modality_lut(stored, dataset)
        shown, low, high = _apply_voi(values, dataset)
    except (ValueError, RuntimeError, AttributeError, KeyError, NotImplementedError) as err:
        raise _error(path, f"undecodable DICOM pixel data ({err})") from None
    if shown.ndim != 2:
        raise _error(path, f"DICOM frame has shape {shown.shape}, expected one grey plane")
    grey = _scale_to_uint8(shown, low, high)
    return 255 - grey if photometric == "MONOCHROME1" else grey


def _check_decodable(path: Path, dataset: Dataset) -> None:
    """Name the transfer syntax and the missing decoder package instead of pydicom's long error."""
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if syntax is None:  # no file meta: pydicom needs the encoding it guessed while reading
        syntax = _ENCODINGS.get(dataset.original_encoding, ExplicitVRLittleEndian)
        dataset.file_meta.TransferSyntaxUID = syntax
    syntax = UID(syntax)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise _error(
            path, f"DICOM transfer syntax {syntax.name} ({syntax}) is not supported"
        ) from None
    if not decoder.is_available:
        raise _error(
            path,
            f"compressed DICOM transfer syntax {syntax.name} ({syntax}) cannot be decoded without "
            f"an extra decoder package; install one of: {'; '.join(decoder.missing_dependencies)}",
        )


def _apply_voi(values: np.ndarray, dataset: Dataset) -> tuple[np.ndarray, float, float]:
    """Apply the VOI LUT (preferred, as pydicom's ``apply_voi_lut`` does), else the first window,
    else nothing; return the values and the range to map onto 0..255 (its two ends may be
    swapped, for a negative rescale slope)."""
    luts = dataset.get("VOILUTSequence")
    if luts and "LUTDescriptor" in luts[0] and "LUTData" in luts[0]:
        entries, first = luts[0].LUTDescriptor[0] or 2**16, luts[0].LUTDescriptor[1]
        table = apply_voi(np.arange(first, first + entries), dataset)
        # LUTs are indexed by integers; rescaled values are whole numbers stored as float
        shown = apply_voi(np.rint(values).astype(np.int64), dataset)
        return shown, float(table.min()), float(table.max())
    if dataset.get("WindowCenter") is not None and dataset.get("WindowWidth") is not None:
        with np.errstate(over="ignore"):  # a SIGMOID window at ±inf
            low, high = apply_windowing(np.array([-np.inf, np.inf]), dataset)
        return apply_windowing(values, dataset), float(low), float(high)
    return values, float(values.min()), float(values.max())


def _scale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``low`` → 0 and ``high`` → 255 linearly, clipping outside; a flat range is black."""
    if high == low:
        return np.zeros(values.shape, np.uint8)
    scaled = (values.astype(np.float64) - low) / (high - low) * 255.0
    return np.round(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)
