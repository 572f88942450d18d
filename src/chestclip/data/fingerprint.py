"""What a source holds, as one short hash: ``chestclip run`` reruns ``prepare`` when it changes.

Sizes and modification times, not contents: hashing the 14 GB image archive on every run would
cost minutes, while a download that is replaced, resumed, truncated or edited always changes a
size or a modification time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from chestclip.data.sources import SourceError


def source_fingerprint(source: str | os.PathLike) -> str:
    """A hash of every file in ``source`` (a folder, or one archive): its path relative to the
    source, size and modification time. Moving the folder keeps it; adding, removing, replacing
    or truncating a file changes it. Hidden entries (``.name``: download markers, temporary
    files) are left out. Raises SourceError for a missing source."""
    root = Path(source)
    if not root.exists():
        raise SourceError(f"{root}: no such file or directory")
    digest = hashlib.sha256()
    files = [root] if root.is_file() else _visible_files(root)
    for path in files:
        stat = path.stat()
        name = path.relative_to(root).as_posix() if path != root else path.name
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _visible_files(root: Path) -> list[Path]:
    files = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        files += [Path(folder, n) for n in sorted(names) if not n.startswith(".")]
    return [path for path in files if path.is_file()]
