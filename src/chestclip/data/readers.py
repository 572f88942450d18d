"""Read any X-ray file a user hands to ``chestclip predict`` (PNG, JPEG or DICOM; a regular file
within the pixel cap of ``chestclip.data.limits``) into a display-ready uint8 grey image, or fail
with one line naming the file and the problem; whatever fails inside one file's pixel pipeline
is that file's error.

DICOM display pipeline (PS3.3 C.11), all steps but the last two done by pydicom:
stored values → Modality LUT or Rescale Slope/Intercept → VOI LUT, else Window Center/Width (first
of several), else min-max over the image → scale that range to 0..255 → invert MONOCHROME1 so that
bone is bright. The min-max fallback is the rule ``to_grey`` applies to 16-bit PNGs, so a DICOM
without a window and its 16-bit PNG export give the same image (no percentile clipping: nothing
is thrown away that training images kept). Multi-frame files: the first frame is read. The
elementwise steps run a block of rows at a time (``scale_to_uint8``): memory stays near the
stored frame's size, whatever the window function does.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.datadict import dictionary_has_tag
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset, read_preamble
from pydicom.pixels import apply_modality_lut, get_decoder, pixel_array
from pydicom.pixels.processing import apply_voi, apply_windowing
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from chestclip.data.images import (
    ResizeMode,
    fit_square,
    load_xray,
    row_blocks,
    scale_to_uint8,
    to_grey,
)
from chestclip.data.limits import (
    BYTES_PER_PIXEL,
    DEFAULT_MAX_PIXELS,
    METADATA_BYTES,
    RASTER_FORMATS,
    InputRejected,
    check_inflated_size,
    check_pixels,
    open_raster,
    open_regular_file,
)
from chestclip.errors import ChestClipError

_DICOM_SUFFIXES = (".dcm", ".dicom")
_RASTER_SIGNATURES = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG"}
_GREYSCALE = ("MONOCHROME1", "MONOCHROME2")
_PIXEL_DATA = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_TAG = 0x7FE00010
_RASTER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
# the transfer syntax a file without file meta was written in, by (implicit VR, little endian)
_ENCODINGS = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}


class ImageReadError(ChestClipError):
    """An X-ray file that cannot be read; the message is one line: ``<file>: <problem>``."""


def read_xray(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An X-ray file (PNG, JPEG or DICOM, told apart by content; a regular file of at most
    ``max_pixels`` pixels) → uint8 [H, W], display-ready (bone bright). Raises ImageReadError."""
    path = Path(path)
    with _opened(path) as handle:
        if _is_dicom(path, handle):
            return _read_dicom(path, handle, max_pixels)
        with _pixel_errors(path, "image"), open_raster(handle, max_pixels) as image:
            return to_grey(image)


def read_xray_for_model(
    path: str | Path, size: int, resize: ResizeMode = "pad", max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """An X-ray file → uint8 [size, size], prepared exactly as training images were: rasters go
    through ``load_xray`` itself, DICOMs through ``read_xray`` then ``fit_square``. Raises
    ImageReadError."""
    path = Path(path)
    with _opened(path) as handle:
        if _is_dicom(path, handle):
            return fit_square(_read_dicom(path, handle, max_pixels), size, resize)
        with _pixel_errors(path, "image"):
            return load_xray(handle, size, resize, max_pixels)


def _error(path: Path, problem: object) -> ImageReadError:
    return ImageReadError(f"{path}: {' '.join(str(problem).split())}")  # one line, always


@contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """``path`` open for reading, if it is a regular file (a device or FIFO would never end)."""
    try:
        handle = open_regular_file(path)
    except FileNotFoundError:
        raise _error(path, "file not found") from None
    except InputRejected as err:
        raise _error(path, err) from None
    except OSError as err:
        raise _error(path, f"cannot open: {err.strerror or err}") from None
    with handle:
        yield handle


def _is_dicom(path: Path, handle: BinaryIO) -> bool:
    """True for DICOM (``DICM`` at byte 128, or a .dcm file that only pydicom can read), False for
    a PNG or JPEG; raises ImageReadError for an empty or unrecognised file. ``handle`` is left at
    its start."""
    header = handle.read(132)
    handle.seek(0)
    if not header:
        raise _error(path, "empty file")
    if header[128:132] == b"DICM":
        return True
    try:
        with Image.open(handle, formats=RASTER_FORMATS):  # leaves ``handle`` open
            return False
    except UnidentifiedImageError:
        pass  # not a PNG or JPEG (PIL knows other formats; the tool reads only these)
    except _RASTER_ERRORS as err:
        raise _error(path, f"corrupt image ({err})") from None
    finally:
        handle.seek(0)
    kind = next((name for sig, name in _RASTER_SIGNATURES.items() if header.startswith(sig)), None)
    if kind:
        raise _error(path, f"truncated or corrupt {kind} file")
    if path.suffix.lower() in _DICOM_SUFFIXES:
        return True  # a DICOM written without preamble; _read_dicom rejects what is not
    raise _error(path, "not a PNG, JPEG or DICOM file")


@contextmanager
def _pixel_errors(path: Path, kind: str) -> Iterator[None]:
    """Whatever fails while one file's pixels are decoded is that file's one-line error: PIL's
    and pydicom's errors for truncated data, and also those malformed attributes raise anywhere
    in pydicom's pipeline (text in Rescale Slope, a short LUT: TypeError, IndexError, ...)."""
    try:
        yield
    except ImageReadError:
        raise
    except InputRejected as err:
        raise _error(path, err) from None
    except _RASTER_ERRORS as err:
        raise _error(path, f"truncated or corrupt {kind} ({err})") from None
    except Exception as err:  # any failure here belongs to this one file
        raise _error(path, f"malformed {kind} ({type(err).__name__}: {err})") from None


def _read_dicom(path: Path, handle: BinaryIO, max_pixels: int) -> np.ndarray:
    """A DICOM file → display-ready uint8 [H, W] (see the module docstring for the pipeline)."""
    try:
        _check_inflation(handle, max_pixels)
        dataset = pydicom.dcmread(handle, force=True)  # pixel data as stored: at most the file
    except InputRejected as err:
        raise _error(path, err) from None
    except (InvalidDicomError, OSError, EOFError, ValueError, zlib.error) as err:
        raise _error(path, f"corrupt DICOM file ({err})") from None
    if not any(dictionary_has_tag(element.tag) for element in dataset.elements()):
        # a forced read turns any bytes into a "dataset" of unknown private tags
        raise _error(path, "not a PNG, JPEG or DICOM file")
    with _pixel_errors(path, "DICOM"):
        return _display_pixels(path, dataset, max_pixels)


def _check_inflation(handle: BinaryIO, max_pixels: int) -> None:
    """For a deflated transfer syntax (the whole dataset zlib-compressed, which pydicom inflates
    in one piece): refuse an image declared larger than ``max_pixels`` from the first inflated
    chunk, then count the inflated bytes and refuse past what a frame within the cap needs.
    ``handle`` is left at its start."""
    try:
        read_preamble(handle, force=True)
        meta = read_dataset(handle, False, True, stop_when=lambda tag, vr, length: tag >> 16 != 2)
        deflated = meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian
    except Exception:  # no readable file meta: not deflated (dcmread judges the rest)
        deflated = False
    if deflated:
        start = handle.tell()
        _check_declared_pixels(handle, max_pixels)
        handle.seek(start)
        check_inflated_size(handle, max_pixels * BYTES_PER_PIXEL + METADATA_BYTES)
    handle.seek(0)


def _check_declared_pixels(handle: BinaryIO, max_pixels: int) -> None:
    """Rows × Columns of a deflated dataset, read from its first inflated megabyte."""
    head = zlib.decompressobj(-zlib.MAX_WBITS).decompress(handle.read(1 << 20), 1 << 20)
    try:
        dataset = read_dataset(
            io.BytesIO(head), False, True, stop_when=lambda tag, vr, length: tag == _PIXEL_TAG
        )
        rows, columns = int(dataset.Rows), int(dataset.Columns)
    except Exception:  # metadata beyond the first megabyte, or malformed: counting decides
        return
    check_pixels(columns, rows, max_pixels)


def _display_pixels(path: Path, dataset: Dataset, max_pixels: int) -> np.ndarray:
    if not any(keyword in dataset for keyword in _PIXEL_DATA):
        raise _error(path, "DICOM file has no pixel data (not an image, e.g. a report or SR)")
    photometric = dataset.get("PhotometricInterpretation", "(missing)")
    if photometric not in _GREYSCALE:
        raise _error(
            path,
            f"unsupported DICOM photometric interpretation {photometric!r}: "
            "only greyscale MONOCHROME1/MONOCHROME2 X-rays can be read",
        )
    check_pixels(dataset.Columns, dataset.Rows, max_pixels)
    _check_decodable(path, dataset)
    try:
        stored = pixel_array(dataset, index=0)  # decodes the first frame only
    except (ValueError, RuntimeError, AttributeError, KeyError, NotImplementedError) as err:
        raise _error(path, f"undecodable DICOM pixel data ({err})") from None
    if stored.ndim != 2:
        raise _error(path, f"DICOM frame has shape {stored.shape}, expected one grey plane")

    def shown(block: np.ndarray) -> np.ndarray:
        return _apply_voi(apply_modality_lut(block, dataset), dataset)

    low, high = _display_range(stored, dataset, shown)
    grey = scale_to_uint8(stored, low, high, shown)
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


def _has_voi_lut(dataset: Dataset) -> bool:
    luts = dataset.get("VOILUTSequence")
    return bool(luts) and "LUTDescriptor" in luts[0] and "LUTData" in luts[0]


def _has_window(dataset: Dataset) -> bool:
    return dataset.get("WindowCenter") is not None and dataset.get("WindowWidth") is not None


def _apply_voi(values: np.ndarray, dataset: Dataset) -> np.ndarray:
    """Apply the VOI LUT (preferred, as pydicom's ``apply_voi_lut`` does), else the first window,
    else nothing (elementwise: applied a block of rows at a time)."""
    if _has_voi_lut(dataset):
        # LUTs are indexed by integers; rescaled values are whole numbers stored as float
        return apply_voi(np.rint(values).astype(np.int64), dataset)
    if _has_window(dataset):
        return apply_windowing(values, dataset)
    return values


def _display_range(
    stored: np.ndarray, dataset: Dataset, shown: Callable[[np.ndarray], np.ndarray]
) -> tuple[float, float]:
    """The range of ``shown`` values to map onto 0..255 (its two ends may be swapped, for a
    negative rescale slope): the VOI LUT's or the window's output range, else the image's
    min–max (computed a block of rows at a time)."""
    if _has_voi_lut(dataset):
        entries, first = dataset.VOILUTSequence[0].LUTDescriptor[:2]
        table = apply_voi(np.arange(first, first + (entries or 2**16)), dataset)
        return float(table.min()), float(table.max())
    if _has_window(dataset):
        with np.errstate(over="ignore"):  # a SIGMOID window at ±inf
            low, high = apply_windowing(np.array([-np.inf, np.inf]), dataset)
        return float(low), float(high)
    low, high = np.inf, -np.inf
    for rows in row_blocks(stored):
        block = shown(stored[rows])
        low, high = min(low, float(block.min())), max(high, float(block.max()))
    return low, high
