"""Decode X-ray files once into a fixed-size uint8 array that training memory-maps."""

from __future__ import annotations

import io
import tarfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from PIL import Image

ResizeMode = Literal["pad", "stretch"]
ImageSource = bytes | str  # encoded bytes, or a file path
_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def to_grey(image: Image.Image) -> np.ndarray:
    """Any PIL image → uint8 [H, W]. 12/16-bit and float images are min-max scaled; alpha is
    composited on black (background of a radiograph)."""
    if image.mode in _HIGH_DEPTH_MODES:
        pixels = np.asarray(image, dtype=np.float32)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) / (high - low) * 255.0 if high > low else np.zeros_like(pixels)
        return np.round(scaled).astype(np.uint8)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8)


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


def load_xray(source: ImageSource, size: int, mode: ResizeMode = "pad") -> np.ndarray:
    """Decode a PNG/JPEG (8/16-bit grey, RGB, RGBA) and fit it to size×size uint8."""
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    with Image.open(handle) as image:
        image.draft("L", (size, size))  # JPEG decodes at reduced scale: much faster for big files
        return fit_square(to_grey(image), size, mode)


def decode_xray(
    source: ImageSource | None, size: int, mode: ResizeMode = "pad"
) -> tuple[np.ndarray | None, str]:
    """``load_xray``, failures returned instead of raised: (uint8 [size, size], "") or
    (None, reason); ``source`` None is an archive member that could not be read."""
    if source is None:
        return None, "unreadable: missing from the archive or archive truncated"
    try:
        return load_xray(source, size, mode), ""
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
) -> dict[int, str]:
    """Decode ``files`` into ``out[i]`` (uint8 [N, S, S]); return {index: error} for failures."""
    size = out.shape[1]

    def decode(item: tuple[int, ImageSource | None]) -> tuple[int, np.ndarray | None, str]:
        index, source = item
        return index, *decode_xray(source, size, mode)

    errors = {}
    for index, pixels, error in progress(
        bounded_parallel_map(decode, iter_sources(files, archive), workers)
    ):
        if pixels is None:
            errors[index] = error
        else:
            out[index] = pixels
    return errors
