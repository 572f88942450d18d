"""Download the IU X-Ray collection from OpenI: resumable, verified, safely extracted; and the
collection's per-image view tables, which OpenI does not serve, from torchxrayvision's repository.

Hand-written on ``urllib`` because none of our dependencies resumes an HTTP download (``Range``)
while hashing it, and adding ``requests`` for one command is not worth it. The archives need no
extraction to be used (``chestclip prepare`` reads them as they are); extraction is a convenience.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from tqdm.auto import tqdm

from chestclip import __version__
from chestclip.data.openi import IMAGES_ARCHIVE, METADATA_TABLE, REPORTS_ARCHIVE, TSNE_VIEW_TABLE
from chestclip.errors import ChestClipError
from chestclip.utils.io import atomic_directory, atomic_write_json

DEFAULT_BASE_URL = "https://openi.nlm.nih.gov/imgs/collections"
IU_XRAY_ARCHIVES = {"reports": REPORTS_ARCHIVE, "images": IMAGES_ARCHIVE}
# The view tables (see chestclip.data.openi) as torchxrayvision ships them, at the commit that
# added them (unchanged since, through release 1.5.x): a fixed URL, so fixed bytes.
VIEW_TABLES_URL = (
    "https://raw.githubusercontent.com/mlmed/torchxrayvision/"
    "8ef884614164d54e2660947241ab0276b29526e9/torchxrayvision/data"
)
VIEW_TABLES = (f"{METADATA_TABLE}.gz", f"{TSNE_VIEW_TABLE}.gz")
IU_XRAY_FILES = {  # --only choices
    "reports": (REPORTS_ARCHIVE,), "images": (IMAGES_ARCHIVE,), "views": VIEW_TABLES,
}  # fmt: skip
# The view tables' digests are those of the blobs at that commit. OpenI publishes no checksums and
# we do not invent them: the NLMCXR_reports.tgz torchxrayvision re-hosts (1,112,632 bytes) has
# sha256 8fb6de7eec73d8c3665067ad4bb003ccd57f971ae316d2642e1627ac7268667a, but whether OpenI serves
# those very bytes cannot be checked offline. Users who have a digest pass it
# (``chestclip download iu-xray --sha256 NLMCXR_png.tgz=<hex>``, or ``expected=`` in Python).
# Otherwise the first download's sha256 is recorded in DEST/RECORDED_SHA256 and later
# downloads into DEST must match it (trust on first use).
KNOWN_SHA256: dict[str, str] = {
    VIEW_TABLES[0]: "996c7d7a23b6bef51b1308dfa9671fb59b00e67c8928f7ff45cc002ca16ebf3e",
    VIEW_TABLES[1]: "98d66188265a15f00038a5c894adeeaafcd78dbf82f687308f1443793805a253",
}
RECORDED_SHA256 = ".chestclip-sha256.json"
# The one folder each archive is extracted into: nothing else in DEST is ever written.
EXTRACTED_DIRS = {REPORTS_ARCHIVE: "ecgen-radiology", IMAGES_ARCHIVE: "NLMCXR_png"}
EXTRACTED_MARKER = ".chestclip-extracted.json"  # inside a folder extraction made
CHUNK_BYTES = 1 << 20
RETRY_DELAY_S = 2.0  # times the attempt number
_HEADERS = {"User-Agent": f"chestclip/{__version__}", "Accept-Encoding": "identity"}
# A transfer that breaks after the server answered is retried from the .part file; a refused
# connection, a DNS failure or an HTTP error status is not (retrying would not change it).
_TRANSIENT = (http.client.IncompleteRead, ConnectionError, TimeoutError, ssl.SSLError)
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# tarfile's own safety filter (Python 3.12, back-ported to 3.8.17+/3.11.4+) on top of our check
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}

Status = Literal["downloaded", "resumed", "skipped"]


class DownloadError(ChestClipError):
    """A download, check or extraction that failed; the message is one line naming the file/URL."""


@dataclass(frozen=True)
class DownloadedFile:
    """One archive on disk, verified: ``status`` says whether this call fetched it whole,
    finished an earlier partial download, or found it already there."""

    name: str
    url: str
    path: Path
    size: int  # bytes
    sha256: str
    status: Status
    extracted_to: Path | None = None

    def describe(self) -> str:
        extracted = f", extracted to {self.extracted_to}" if self.extracted_to else ""
        return f"{self.name}: {self.status}, {self.size:,} bytes, sha256 {self.sha256}{extracted}"


@dataclass(frozen=True)
class DownloadResult:
    """What ``download_iu_xray`` left in ``dest``: one entry per file, in the order asked."""

    dest: Path
    files: tuple[DownloadedFile, ...]


def parse_sha256(values: Iterable[str]) -> dict[str, str]:
    """``["NLMCXR_png.tgz=<64 hex digits>", ...]`` (the CLI's ``--sha256``) → {name: hex}."""
    checksums = {}
    for value in values:
        name, sep, digest = value.partition("=")
        if not sep or not name.strip():
            raise DownloadError(f"--sha256 {value!r}: expected NAME=HEX, e.g. {IMAGES_ARCHIVE}=…")
        checksums[name.strip()] = digest.strip()
    return checksums


def download_iu_xray(
    dest: str | os.PathLike,
    base_url: str = DEFAULT_BASE_URL,
    files: Sequence[str] = (REPORTS_ARCHIVE, IMAGES_ARCHIVE, *VIEW_TABLES),
    extract: bool = True,
    progress: bool = True,
    expected: Mapping[str, str] | None = None,
    timeout: float = 60,
    retries: int = 3,
    tables_url: str = VIEW_TABLES_URL,
) -> DownloadResult:
    """Fetch the OpenI archives (from ``base_url``) and the view tables (from ``tables_url``) into
    ``dest`` (``dest/<name>``), resuming ``dest/<name>.part`` left by an interrupted run; verify
    each (size, and sha256 when known: ``expected`` maps a file name to its hex digest, else the
    one recorded in ``dest`` by its first download) and, with ``extract``, unpack the archives
    safely (``extract_archive``; the tables stay gzipped, as ``chestclip prepare`` reads them). A
    file already present and verified is not fetched again, nor re-extracted."""
    dest = Path(dest)
    checksums = _checksums(files, expected)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"{dest}: cannot create the destination: {_one_line(err)}") from None
    recorded = _recorded_sha256(dest)
    results = []
    for name in files:
        url = f"{(tables_url if name in VIEW_TABLES else base_url).rstrip('/')}/{name}"
        from_record = name not in checksums and name in recorded
        try:
            item = fetch_file(
                url,
                dest / name,
                checksums.get(name) or recorded.get(name),
                progress=progress,
                timeout=timeout,
                retries=retries,
            )
        except DownloadError as err:
            if not from_record or "sha256" not in str(err):
                raise
            raise DownloadError(
                f"{err}; that sha256 was recorded in {dest / RECORDED_SHA256} when {name} was "
                "first downloaded: if the server's file legitimately changed, remove its entry"
            ) from None
        if name not in recorded:
            recorded[name] = item.sha256
            atomic_write_json(dest / RECORDED_SHA256, recorded)
        if extract and name not in VIEW_TABLES:
            item = replace(item, extracted_to=_extract_once(item, dest, progress))
        results.append(item)
    return DownloadResult(dest, tuple(results))


def _checksums(files: Sequence[str], expected: Mapping[str, str] | None) -> dict[str, str]:
    for name in files:
        if not name or PurePosixPath(name).name != name:
            raise DownloadError(f"{name!r}: expected a plain file name such as {REPORTS_ARCHIVE}")
    known = (*files, *IU_XRAY_ARCHIVES.values(), *VIEW_TABLES)
    checksums = {**KNOWN_SHA256}
    for name, digest in (expected or {}).items():
        if name not in known:
            raise DownloadError(f"sha256 given for {name!r}, which is none of {', '.join(known)}")
        if not _SHA256.fullmatch(digest.strip().lower()):
            raise DownloadError(f"sha256 for {name}: {digest!r} is not 64 hexadecimal digits")
        checksums[name] = digest.strip().lower()
    return checksums


def _recorded_sha256(dest: Path) -> dict[str, str]:
    try:
        record = json.loads((dest / RECORDED_SHA256).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise DownloadError(f"{dest / RECORDED_SHA256}: unreadable: {_one_line(err)}") from None
    if not isinstance(record, dict) or not all(
        isinstance(v, str) and _SHA256.fullmatch(v) for v in record.values()
    ):
        raise DownloadError(f"{dest / RECORDED_SHA256}: not a {{name: sha256}} record")
    return record


def fetch_file(
    url: str,
    path: str | os.PathLike,
    sha256: str | None = None,
    *,
    progress: bool = True,
    timeout: float = 60,
    retries: int = 3,
) -> DownloadedFile:
    """Download ``url`` to ``path`` through ``path.part`` (resumed when present); only a file
    whose size matches the server's Content-Length (and ``sha256`` when given) is renamed to
    ``path``. A mismatch keeps the bytes as ``path.corrupt`` and raises DownloadError."""
    path = Path(path)
    total = _remote_size(url, timeout)
    with _bar(path.name, total, progress) as bar:
        if path.is_file() and total in (None, path.stat().st_size):
            digest, size = _hash_file(path, hashlib.sha256(), bar).hexdigest(), path.stat().st_size
            if sha256 in (None, digest):
                return DownloadedFile(path.name, url, path, size, digest, "skipped")
            bar.reset(total)  # stale or damaged: fetch it again, it is replaced once verified
        part = _PartFile(path.with_name(f"{path.name}.part"), total, bar)
        _check_free_space(part)
        for attempt in range(retries + 1):
            try:
                _transfer(url, part, timeout)
                break
            except _TRANSIENT as err:
                if attempt == retries:
                    raise DownloadError(_broken_transfer(url, part, retries, err)) from None
                time.sleep(RETRY_DELAY_S * (attempt + 1))
            except (OSError, http.client.HTTPException) as err:  # disk full, protocol error
                raise DownloadError(f"{url} → {part.path}: {_one_line(err)}") from None
    _verify(part, sha256, path)
    os.replace(part.path, path)
    status: Status = "resumed" if part.resumed else "downloaded"
    return DownloadedFile(path.name, url, path, part.size, part.hasher.hexdigest(), status)


def _bar(name: str, total: int | None, progress: bool) -> tqdm:
    return tqdm(
        desc=name, total=total, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress
    )


def _hash_file(path: Path, hasher: hashlib._Hash, bar: tqdm) -> hashlib._Hash:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            hasher.update(chunk)
            bar.update(len(chunk))
    return hasher


class _PartFile:
    """The ``.part`` file of one download: its size, the sha256 of the bytes it holds (hashed
    as they arrive, after those an earlier run left), the full size once known, its bar."""

    def __init__(self, path: Path, total: int | None, bar: tqdm) -> None:
        self.path, self.total, self.bar = path, total, bar
        self.hasher = hashlib.sha256()
        self.resumed = False  # the final bytes include some from an earlier attempt
        self.size = path.stat().st_size if path.is_file() else 0
        if self.size:
            _hash_file(path, self.hasher, bar)

    def restart(self) -> None:
        self.path.write_bytes(b"")
        self.hasher, self.size, self.resumed = hashlib.sha256(), 0, False
        self.bar.reset(self.total)

    def set_total(self, total: int | None) -> None:
        if total is not None:
            self.total = self.bar.total = total
            self.bar.refresh()

    def append_from(self, response: BinaryIO) -> None:
        with self.path.open("ab") as out:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                self.hasher.update(chunk)
                self.size += len(chunk)
                self.bar.update(len(chunk))


def _check_free_space(part: _PartFile) -> None:
    if part.total is None:
        return
    needed, free = part.total - part.size, shutil.disk_usage(part.path.parent).free
    if needed > free:
        raise DownloadError(
            f"{part.path.parent}: {needed:,} bytes needed for {part.path.name}, {free:,} free"
        )


def _transfer(url: str, part: _PartFile, timeout: float) -> None:
    """One GET that continues ``part`` (``Range``) up to its end; transient errors propagate."""
    if part.size and part.size == part.total:
        part.resumed = True  # an earlier run got every byte but stopped before the rename
        return
    if part.total is not None and part.size > part.total:
        part.restart()  # the file changed on the server: what we have belongs to another
    headers = {**_HEADERS, **({"Range": f"bytes={part.size}-"} if part.size else {})}
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as err:
        if err.code != 416 or not part.size:
            raise _failure(url, err) from None
        _, total = _content_range(err.headers.get("Content-Range"))
        err.close()
        if total is not None and total == part.size:  # nothing left after our offset: complete
            part.set_total(total)
            part.resumed = True
            return
        part.restart()
        return _transfer(url, part, timeout)
    except urllib.error.URLError as err:
        raise _failure(url, err) from None
    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != part.size:
                raise DownloadError(
                    f"{url}: asked for bytes {part.size}- but the server sent bytes {start}-"
                )
            part.resumed = part.resumed or part.size > 0
        else:  # 200: the whole file, also from a server that ignores Range
            if part.size:
                part.restart()
            total = _int(response.headers.get("Content-Length"))
        part.set_total(total)
        part.append_from(response)
    if part.total is not None and part.size < part.total:  # the server closed early
        raise http.client.IncompleteRead(b"", part.total - part.size)


def _remote_size(url: str, timeout: float) -> int | None:
    """The Content-Length of a HEAD; None where the server gives none or refuses HEAD."""
    request = urllib.request.Request(url, headers=_HEADERS, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _int(response.headers.get("Content-Length"))
    except urllib.error.HTTPError as err:
        if err.code in (405, 501):
            err.close()
            return None
        raise _failure(url, err) from None
    except (urllib.error.URLError, *_TRANSIENT, http.client.HTTPException) as err:
        raise _failure(url, err) from None


def _verify(part: _PartFile, sha256: str | None, path: Path) -> None:
    digest, problems = part.hasher.hexdigest(), []
    if part.total is not None and part.size != part.total:
        problems.append(f"{part.size:,} bytes where the server announced {part.total:,}")
    if sha256 is not None and digest != sha256:
        problems.append(f"sha256 {digest} where {sha256} was expected")
    if problems:
        corrupt = path.with_name(f"{path.name}.corrupt")
        os.replace(part.path, corrupt)
        raise DownloadError(f"{path.name}: {'; '.join(problems)} (kept as {corrupt})")


def _failure(url: str, err: BaseException) -> DownloadError:
    if isinstance(err, urllib.error.HTTPError):
        err.close()
        return DownloadError(f"{url}: HTTP {err.code} {err.reason}")
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    return DownloadError(f"{url}: connection failed: {_one_line(reason)}")


def _broken_transfer(url: str, part: _PartFile, retries: int, err: BaseException) -> str:
    of = f" of {part.total:,}" if part.total is not None else ""
    where = f"; run again to resume from {part.path}" if part.size else ""
    return (
        f"{url}: transfer broken at byte {part.size:,}{of} after {retries} retries "
        f"({_one_line(err)}){where}"
    )


def _one_line(reason: object) -> str:
    text = str(reason).strip()
    return text.splitlines()[0] if text else type(reason).__name__


def _int(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/200`` → (100, 200); ``bytes */200`` → (None, 200)."""
    match = _CONTENT_RANGE.match((value or "").strip())
    if not match:
        return None, None
    start, total = match.groups()
    return _int(start), _int(total)


# ---- extraction ---------------------------------------------------------------------------------


def _extract_once(item: DownloadedFile, dest: Path, progress: bool) -> Path:
    """Extract ``item`` unless this very archive (same sha256) was extracted into ``dest``."""
    target = dest / extracted_name(item.name)
    if _extraction_record(target).get("sha256") == item.sha256:
        return target
    return extract_archive(item.path, dest, progress, sha256=item.sha256)


def extracted_name(archive_name: str) -> str:
    """The folder an archive is extracted into: fixed for the OpenI archives, else the archive's
    name without ``.tgz`` (never a name read from inside the archive)."""
    return EXTRACTED_DIRS.get(archive_name) or _archive_stem(archive_name)


def _extraction_record(target: Path) -> dict:
    """What ``extract_archive`` wrote into ``target`` ({} if it did not make it). Folders made
    before the marker moved inside are recognised by the record beside them."""
    legacy = target.parent.glob(".*.extracted.json")
    for path in (target / EXTRACTED_MARKER, *legacy):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("directory") == target.name:
            return record
    return {}


def extract_archive(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    progress: bool = False,
    sha256: str | None = None,
) -> Path:
    """Unpack a tar archive into ``dest / extracted_name(archive)``; return that folder.

    The folder's name is ours, never the archive's: an archive whose top folder is
    ``ecgen-radiology/`` (``NLMCXR_reports.tgz``) has that level removed, any other content
    (``NLMCXR_png.tgz``: PNGs at its top; an archive whose top folder is ``.ssh``) goes inside
    the folder as it is. An existing folder is replaced only if an earlier extraction made it
    (its marker file); otherwise nothing is written. The archive is unpacked in a hidden
    directory inside ``dest`` that replaces the folder only once whole. A member with an
    absolute path, a ``..`` component, a link leading outside ``dest`` or a device file refuses
    the whole archive.
    """
    archive, dest = Path(archive), Path(dest)
    target = dest / extracted_name(archive.name)
    if target.is_symlink() or (target.exists() and not _extraction_record(target)):
        raise DownloadError(
            f"{archive}: would extract into {target}, which exists and was not made by chestclip; "
            "move it away or choose another --dest (nothing was extracted)"
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{archive.name}.", suffix=".tmp", dir=dest) as tmp:
        root = Path(tmp)
        try:
            with tarfile.open(archive, "r:*") as tar, _files_bar(archive, progress) as bar:
                tar.extractall(root, members=_safe_members(tar, archive, root, bar), **_TAR_FILTER)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise DownloadError(f"{archive}: cannot extract: {_one_line(err)}") from None
        entries = list(root.iterdir())
        top = entries[0] if len(entries) == 1 else None
        unwrap = top and top.name == target.name and top.is_dir() and not top.is_symlink()
        content = top if unwrap else root
        record = {"archive": archive.name, "sha256": sha256, "directory": target.name}
        with atomic_directory(target) as slot:
            for child in content.iterdir():
                os.replace(child, slot / child.name)
            atomic_write_json(slot / EXTRACTED_MARKER, record)
    return target


def _files_bar(archive: Path, progress: bool) -> tqdm:
    return tqdm(desc=f"extracting {archive.name}", unit=" files", disable=not progress)


def _safe_members(
    tar: tarfile.TarFile, archive: Path, root: Path, bar: tqdm
) -> Iterator[tarfile.TarInfo]:
    # Checked one by one as extraction streams, so a link extracted earlier is resolved on disk.
    real_root = os.path.realpath(root)
    for member in tar:
        problem = _unsafe_member(member, real_root)
        if problem:
            raise DownloadError(
                f"{archive}: refused member {member.name!r}: {problem}; nothing was extracted"
            )
        bar.update()
        yield member


def _unsafe_member(member: tarfile.TarInfo, root: str) -> str | None:
    """Why writing ``member`` under ``root`` would be unsafe, or None (as ``tarfile.data_filter``,
    which Python < 3.11.4 lacks)."""
    if member.name.startswith(("/", "\\")) or os.path.isabs(member.name):
        return "absolute path"
    if ".." in PurePosixPath(member.name).parts:
        return "'..' path component"
    if not _inside(os.path.join(root, member.name), root):
        return "its path leads outside the destination through a link"
    if member.issym():
        target = os.path.join(root, os.path.dirname(member.name), member.linkname)
        if os.path.isabs(member.linkname) or not _inside(target, root):
            return f"symbolic link to {member.linkname!r} outside the destination"
    elif member.islnk():
        if os.path.isabs(member.linkname) or not _inside(os.path.join(root, member.linkname), root):
            return f"hard link to {member.linkname!r} outside the destination"
    elif not (member.isfile() or member.isdir()):
        return "device or FIFO"
    return None


def _inside(path: str, root: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def _archive_stem(name: str) -> str:
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return f"{name}.d"
