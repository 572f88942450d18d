"""Decode X-ray files once into a fixed-size uint8 array that training memory-maps."""

from __future__ import annotations

import tarfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from PIL import Image

from chestclip.data.limits import (
    DEFAULT_MAX_PIXELS,
    InputRejected,
    InputSource,
    open_input,
    open_raster,
)

ResizeMode = Literal["pad", "stretch"]
ImageSource = bytes | str  # encoded bytes, or a file path
_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_BLOCK_ELEMENTS = 1 << 20  # float32 working set of scale_to_uint8: 4 MB


def to_grey(image: Image.Image) -> np.ndarray:
    """Any PIL image → uint8 [H, W]. 12/16-bit and float images are min-max scaled; alpha is
    composited on black (background of a radiograph)."""
    if image.mode in _HIGH_DEPTH_MODES:
        pixels = np.asarray(image)
        return scale_to_uint8(pixels, float(pixels.min()), float(pixels.max()))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def scale_to_uint8(
    values: np.ndarray,
    low: float,
    high: float,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Map ``low`` → 0 and ``high`` → 255 linearly, clipping outside and rounding; a flat range
    is black. ``transform`` (elementwise, e.g. a DICOM LUT) is applied first. Works through
    blocks of rows in float32, so a large image never has a float copy of itself."""
    grey = np.zeros(values.shape, np.uint8)
    if high == low:
        return grey
    for rows in row_blocks(values):
        block = np.array(transform(values[rows]) if transform else values[rows], np.float32)
        block -= low
        block /= high - low
        block *= 255.0
        np.clip(block, 0.0, 255.0, out=block)
        grey[rows] = np.rint(block, out=block)
    return grey


def row_blocks(values: np.ndarray) -> Iterator[slice]:
    """Slices of consecutive rows of ``values`` [H, ...], about a million elements each."""
    rows = max(1, _BLOCK_ELEMENTS // max(1, values[0].size)) if len(values) else 1
    for start in range(0, len(values), rows):
        yield slice(start, start + rows)


def fit_square(grey: np.ndarray, size: int, mode: ResizeMode = "pad") -> np.ndarray:
    """uint8 [H, W] → uint8 [size, size]: aspect kept with black padding, or a plain stretch."""
    image = Image.fromarray(grey)
    if mode == "stretch":
        target = (size, size)
    else:
        scale = size / max(image.size)
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resized = image.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if resized.size == (size, size):
        return np.asarray(resized)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return np.asarray(canvas)


def load_xray(
    source: InputSource,
    size: int,
    mode: ResizeMode = "pad",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode a PNG/JPEG (8/16-bit grey, RGB, RGBA) and fit it to size×size uint8. Other formats
    raise UnidentifiedImageError; more than ``max_pixels`` (read from the header) InputRejected.
    JPEGs are decoded at full size, as PNGs are (a reduced-scale JPEG decode, ``Image.draft``,
    is faster but gives other pixels than the PNG of the same image: the format would change
    the answer)."""
    with open_input(source) as handle, open_raster(handle, max_pixels) as image:
        return fit_square(to_grey(image), size, mode)


def decode_xray(
    source: ImageSource | None,
    size: int,
    mode: ResizeMode = "pad",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[np.ndarray | None, str]:
    """``load_xray``, failures returned instead of raised: (uint8 [size, size], "") or
    (None, reason); ``source`` None is an archive member that could not be read."""
    if source is None:
        return None, "unreadable: missing from the archive or archive truncated"
    try:
        return load_xray(source, size, mode, max_pixels), ""
    except InputRejected as err:
        return None, f"refused: {err}"
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        if isinstance(err, FileNotFoundError):
            return None, "file missing"
        return None, f"undecodable image: {err}"


def iter_sources(files: list[str], archive: str | None) -> Iterator[tuple[int, ImageSource | None]]:
    """(index into ``files``, path or bytes) for each file; bytes come from streaming ``archive``
    once in its own order (a gzip'd tar has no random access). Missing members yield None."""
    if archive is None:
        yield from enumerate(files)
        return
    wanted = {name: i for i, name in enumerate(files)}
    seen = set()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                index = wanted.get(member.name)
                if index is not None and member.isfile():
                    handle = tar.extractfile(member)
                    seen.add(index)
                    yield index, handle.read() if handle else None
    except (tarfile.TarError, OSError, EOFError):
        pass  # a truncated archive: the members not reached are reported as unreadable below
    for index in range(len(files)):
        if index not in seen:
            yield index, None


def bounded_parallel_map(fn: Callable, items: Iterable, workers: int, window: int = 64) -> Iterator:
    """``map(fn, items)`` on a thread pool, in order, holding at most ``window`` items in flight
    (``Executor.map`` would read a 14 GB archive into memory before the first result)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def decode_into(
    files: list[str],
    archive: str | None,
    out: np.ndarray,
    mode: ResizeMode = "pad",
    workers: int = 2,
    progress: Callable[[Iterator], Iterator] = iter,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> dict[int, str]:
    """Decode ``files`` into ``out[i]`` (uint8 [N, S, S]); return {index: error} for failures."""
    size = out.shape[1]

    def decode(item: tuple[int, ImageSource | None]) -> tuple[int, np.ndarray | None, str]:
        index, source = item
        return index, *decode_xray(source, size, mode, max_pixels)

    errors = {}
    for index, pixels, error in progress(
        bounded_parallel_map(decode, iter_sources(files, archive), workers)
    ):
        if pixels is None:
            errors[index] = error
        else:
            out[index] = pixels
    return errors
