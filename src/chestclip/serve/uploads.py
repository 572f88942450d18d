"""Uploads: a size limit enforced on the bytes that actually arrive, and the one place an
uploaded file touches the disk (a temporary directory, under a fixed name, removed afterwards).

Hand-written: Starlette checks neither a request's total size nor, for files, a part's size; an
ASGI middleware is the documented way to bound the body before the multipart parser sees it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import unicodedata
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The suffix tells the reader a DICOM written without its preamble; nothing else is kept.
KNOWN_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
MAX_NAME_LENGTH = 120
UPLOAD_TIMEOUT_S = 120.0  # 32 MB at 2 Mbit/s; a slower upload holds a connection too long
# Unicode categories that print nothing or reorder the text shown around them (U+202E)
_INVISIBLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


class UploadLimit:
    """ASGI middleware: a request whose body exceeds ``max_bytes`` gets 413, one that has not
    arrived whole ``seconds`` after its headers 408 (a client sending a byte a second would
    otherwise hold its connection for ever). The declared Content-Length is checked first, then
    the bytes are counted as they arrive (a body sent in chunks has no Content-Length, and a
    declared one may lie); the body, at most ``max_bytes``, is buffered and handed on only when
    complete."""

    def __init__(self, app: ASGIApp, max_bytes: int, seconds: float = UPLOAD_TIMEOUT_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        messages: deque[Message] = deque()
        size = 0
        deadline = asyncio.get_running_loop().time() + self.seconds
        while True:
            try:
                left = deadline - asyncio.get_running_loop().time()
                message = await asyncio.wait_for(receive(), max(left, 0))
            except asyncio.TimeoutError:
                detail = f"upload too slow: not complete within {self.seconds:g} s"
                await _refuse(send, 408, detail)
                return
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._too_large(send)
                return
            messages.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.popleft() if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await _refuse(send, 413, f"upload too large: the limit is {self.max_bytes:,} bytes")


async def _refuse(send: Send, status: int, detail: str) -> None:
    """Answer ``{"detail": ...}`` and close the connection (the rest of the body is not read)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def display_name(filename: str | None) -> str:
    """What an upload is called in messages: the client's file name without any folder, without
    control, format (bidi overrides, zero-width) or line-separator characters, and short; never
    used as a path."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    name = "".join(c for c in name if unicodedata.category(c) not in _INVISIBLE)
    name = name.strip()[:MAX_NAME_LENGTH]
    return name if name.strip(".") else "upload"


@contextmanager
def stored_upload(data: bytes, name: str) -> Iterator[Path]:
    """``data`` written to ``<new temporary directory>/upload<suffix>``, the suffix kept only if
    ``name`` has a known image one; the directory is removed when the block ends."""
    suffix = Path(name).suffix.lower()
    suffix = suffix if suffix in KNOWN_SUFFIXES else ""
    with tempfile.TemporaryDirectory(prefix="chestclip-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        yield path
