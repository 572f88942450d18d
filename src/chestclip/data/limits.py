"""What an input file may cost before a pixel is decoded: regular files only, the documented
formats only (PNG, JPEG and DICOM), a pixel cap read from the header, and bounded inflation of
deflated DICOM.

Why: a 329 KB 16-bit PNG can declare 13,000² pixels (2.5 GB once decoded and scaled), a 390 KB
deflated DICOM inflates to 800 MB, and a ``.dcm`` symlink to ``/dev/zero`` is read forever. The
checks here run on headers and streams, so refusing such a file costs kilobytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from PIL import Image

from chestclip.errors import ChestClipError

# Real radiographs are at most ~19 MP (43×43 cm detectors at 100 µm, 4,300²); 50 MP leaves room
# for scanned films and stitched long-leg views without letting a bomb through.
DEFAULT_MAX_PIXELS = 50_000_000
RASTER_FORMATS = ("PNG", "JPEG")  # what the tool documents; PIL would also hand EPS to Ghostscript
# a deflated DICOM may inflate to one 32-bit frame within the cap plus this much metadata
BYTES_PER_PIXEL, METADATA_BYTES = 4, 16 << 20
_CHUNK = 1 << 20

InputSource = bytes | str | os.PathLike | BinaryIO  # encoded bytes, a path, or an open file


class InputRejected(ChestClipError):
    """A file refused before decoding (not a regular file, a format we do not read, too many
    pixels); the message is one line, without the file name (the caller adds it)."""


def megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:,.1f} MP"


def check_pixels(width: int, height: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """InputRejected when a ``width``×``height`` image has more than ``max_pixels`` pixels."""
    if int(width) * int(height) > max_pixels:
        raise InputRejected(
            f"{int(width):,}×{int(height):,} pixels ({megapixels(int(width) * int(height))}) "
            f"exceed the limit of {megapixels(max_pixels)} (--max-megapixels)"
        )


def open_regular_file(path: str | os.PathLike) -> BinaryIO:
    """``path`` opened for reading if it is a regular file (after symlinks); InputRejected for a
    device, FIFO or socket. Opened non-blocking first, so a FIFO cannot stall the check."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise InputRejected("is a directory, not an image file")
        if not stat.S_ISREG(mode):
            raise InputRejected("not a regular file (a device, FIFO or socket)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def open_input(source: InputSource) -> Iterator[BinaryIO]:
    """A binary file object for encoded bytes, a path (a regular file only) or an open file
    (left open: its owner closes it)."""
    if isinstance(source, bytes):
        yield io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        with open_regular_file(source) as handle:
            yield handle
    else:
        yield source


def open_raster(handle: BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """A PNG or JPEG opened lazily (its header read, no pixel decoded) and within the pixel cap;
    use it in a ``with`` block (``close()`` would close ``handle`` too). Raises PIL's
    UnidentifiedImageError for any other format, InputRejected past the cap."""
    image = Image.open(handle, formats=RASTER_FORMATS)
    check_pixels(*image.size, max_pixels)  # nothing decoded yet: nothing to release
    return image


def check_inflated_size(handle: BinaryIO, max_bytes: int) -> None:
    """Inflate the raw deflate stream from ``handle``'s position to its end, a chunk at a time,
    only counting: InputRejected as soon as more than ``max_bytes`` come out (zlib.error for a
    corrupt stream). Nothing larger than a chunk is ever held."""
    inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
    while not inflater.eof and (data := handle.read(_CHUNK)):
        while data:
            total += len(inflater.decompress(data, _CHUNK))
            if total > max_bytes:
                raise InputRejected(
                    f"deflated data inflates to more than {max_bytes:,} bytes, more than an "
                    "image within the pixel limit needs (--max-megapixels)"
                )
            data = inflater.unconsumed_tail
