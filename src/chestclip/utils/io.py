"""Atomic output: a stage writes to a temporary sibling, then renames it into place.

An interrupted run therefore leaves either the previous artefact or none, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; rename it to ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_current_umask())  # mkstemp's 0600 would outlive the rename
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def claim_new_path(path: str | os.PathLike) -> Path:
    """``path``, else ``<stem>-2<suffix>``, ``-3``, …: the first name that does not exist yet,
    created empty and exclusively (``O_EXCL``), so no other writer, in this process or another,
    gets it too and nothing that existed is overwritten. Fill it with ``atomic_path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = path, 1
    while True:
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            number += 1
            candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``path`` (whole or not at all).
    The temporary directories of ``path`` that a killed process left are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    owner = _owner()
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{owner}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_current_umask())
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.{owner}.old")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _owner() -> str:
    """``<host>-<pid>``: who made a temporary directory, in its name (the host name sanitised, for
    folders shared over the network)."""
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', socket.gethostname())}-{os.getpid()}"


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary directories ``atomic_directory(path)`` made in processes of this host
    that no longer run (killed before they could clean up); return them. Only names of our own
    pattern, ``.<name>.<host>-<pid>.<random>.tmp`` (or ``.old``), are touched, and never one
    whose process is alive or that another host made."""
    path = Path(path)
    host = _owner().rsplit("-", 1)[0]
    pattern = re.compile(
        rf"\.{re.escape(path.name)}\.{re.escape(host)}-(\d+)\.(?:[A-Za-z0-9_]+\.tmp|old)"
    )
    removed = []
    for entry in path.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and entry.is_dir() and not entry.is_symlink() and not _alive(int(match[1])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would not ask but act there: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
