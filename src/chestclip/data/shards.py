"""The sharded image cache: WebDataset tar shards of fixed-size uint8 ``.npy`` images.

Chosen by measurement (``benchmarks/bench_prepare_scale.py``) over fixed-size numpy shards:
read by byte offset they are as fast (9,265 vs 6,222 images/s through a DataLoader on the 2-core
machine), and tar shards are what WebDataset streams from a local disk, a shared file system or
object storage, so multi-node training needs no copy per node. Layout::

    shards/shard-000000.tar   members <key>.npy: uint8 [S, S], key = the image's position in the
    shards/shard-000001.tar   selection prepare decoded (9 digits); shards hold ``shard_size``
    ...                       positions each, in images.csv order (failed images are absent)
    shards/index.csv          row, key, shard, offset, size: where image ``row`` of images.csv
                              lies (byte offset and length of its .npy member)

Every tar member carries fixed metadata (mtime 0, mode 0444, no owner), so a shard's bytes depend
only on its images: a resumed ``prepare`` writes byte-identical shards. Reading needs no header
parsing: all members have one shape, so the pixels are each member's last S² bytes.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from chestclip.data.images import ResizeMode, decode_xray

SHARDS_DIR, INDEX_FILE = "shards", "index.csv"
KEY_DIGITS = 9
INDEX_COLUMNS = ["row", "key", "shard", "offset", "size"]
USTAR = tarfile.USTAR_FORMAT


def shard_name(number: int) -> str:
    return f"shard-{number:06d}.tar"


def sample_key(position: int) -> str:
    return f"{position:0{KEY_DIGITS}d}"


def encode_npy(pixels: np.ndarray) -> bytes:
    """The .npy file of a uint8 image, as ``np.save`` writes it."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(pixels), allow_pickle=False)
    return buffer.getvalue()


def decode_npy(data: bytes, size: int) -> np.ndarray:
    """uint8 [size, size] of a shard's .npy member: its last size² bytes. The header is there for
    other readers; parsing it (``np.load``) costs more than reading the pixels."""
    header = len(data) - size * size
    if header < 0 or header % 64:  # .npy headers are padded to a multiple of 64 bytes
        raise ValueError(f"a shard member of {len(data)} bytes is not a {size}x{size} uint8 .npy")
    return np.frombuffer(data, np.uint8, count=size * size, offset=header).reshape(size, size)


def write_shard(
    path: Path, positions: Sequence[int], files: Sequence[str], size: int, resize: ResizeMode
) -> dict[str, Any]:
    """Decode ``files`` and write them as one tar shard at ``path`` (atomically).

    Returns ``{"errors": {key: reason}, "members": [[key, offset, size], ...]}``: the images that
    could not be decoded and where each written ``.npy`` lies in the tar. Runs in worker processes.
    Written with the standard library's tarfile in plain ustar format (what WebDataset's
    TarWriter wraps; it writes pax headers whatever its format argument, at twice the cost).
    """
    errors = {}
    header = encode_npy(np.zeros((size, size), np.uint8))[: -size * size]  # same for every image
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as stream, tarfile.open(fileobj=stream, mode="w", format=USTAR) as tar:
        for position, file in zip(positions, files, strict=True):
            pixels, reason = decode_xray(file, size, resize) if file else (None, "file missing")
            if pixels is None:
                errors[sample_key(position)] = reason
                continue
            data = header + np.ascontiguousarray(pixels).tobytes()
            member = tarfile.TarInfo(f"{sample_key(position)}.npy")
            member.size, member.mode = len(data), 0o444  # mtime 0, no owner: reproducible bytes
            tar.addfile(member, io.BytesIO(data))
    members = read_shard_members(tmp)
    os.replace(tmp, path)
    return {"errors": errors, "members": members}


def read_shard_members(path: Path) -> list[list]:
    """[[key, offset, size], ...] of a written shard (headers only)."""
    with tarfile.open(path) as tar:
        return [[m.name.split(".")[0], m.offset_data, m.size] for m in tar.getmembers()]


def build_index(members: dict[int, list[list]]) -> pd.DataFrame:
    """INDEX_COLUMNS for every image of every shard, rows numbered in key order."""
    rows = [
        (key, shard_name(number), offset, size)
        for number in sorted(members)
        for key, offset, size in members[number]
    ]
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS[1:]).sort_values("key", kind="stable")
    return index.assign(row=np.arange(len(index)))[INDEX_COLUMNS].reset_index(drop=True)


def read_index(directory: Path) -> pd.DataFrame:
    return pd.read_csv(directory / INDEX_FILE, dtype={"key": str, "shard": str})


def open_url(url: str, mode: str = "rb") -> Any:
    """A binary file object for a local path, ``file:``, ``pipe:``/``http(s):`` (WebDataset's
    opener) or any fsspec URL (``s3://``, ``gs://``, ...; seekable)."""
    scheme = urlparse(url).scheme
    if scheme in ("", "file") or len(scheme) == 1:  # a Windows drive letter is no scheme
        return open(url.removeprefix("file://"), mode)
    if scheme in ("pipe", "http", "https"):
        from webdataset import gopen

        return gopen(url, mode)
    import fsspec

    return fsspec.open(url, mode).open()


def join_url(base: str | Path, name: str) -> str:
    return f"{str(base).rstrip('/')}/{name}"


class ShardArray:
    """The shards read like the ``images.npy`` memory map: ``array[row]`` → uint8 [S, S],
    ``array[rows]`` → [k, S, S], ``shape``, ``len``. Random access by byte offset (local files,
    or any seekable fsspec URL); one open handle per shard and process."""

    dtype = np.dtype(np.uint8)
    ndim = 3

    def __init__(self, location: str | Path, index: pd.DataFrame, image_size: int):
        self.location, self.image_size = str(location), image_size
        self._shard = index["shard"].to_numpy()
        self._offset = index["offset"].to_numpy(dtype=np.int64)
        self._size = index["size"].to_numpy(dtype=np.int64)
        self._handles: dict[str, Any] = {}

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self._shard), self.image_size, self.image_size)

    def __len__(self) -> int:
        return len(self._shard)

    def _read(self, row: int) -> np.ndarray:
        shard = self._shard[row]
        handle = self._handles.get(shard)
        if handle is None:
            handle = self._handles[shard] = open_url(join_url(self.location, shard))
        handle.seek(int(self._offset[row]))
        return decode_npy(handle.read(int(self._size[row])), self.image_size)

    def __getitem__(self, rows: Any) -> np.ndarray:
        if isinstance(rows, (int, np.integer)):
            return self._read(int(rows))
        selected = np.arange(len(self))[rows]
        out = np.empty((len(selected), self.image_size, self.image_size), np.uint8)
        for i, row in enumerate(selected):
            out[i] = self._read(int(row))
        return out

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers open their own handles
        return {**self.__dict__, "_handles": {}}
