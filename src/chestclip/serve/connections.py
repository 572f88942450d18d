"""Connections that never finish a request: uvicorn closes an idle keep-alive connection, but has
no deadline for a request's headers, so 500 clients sending one header byte per second keep 500
sockets open for ever (slowloris). :class:`HeaderDeadlineProtocol` is uvicorn's h11 protocol with
that deadline; the body's deadline is ``UploadLimit``'s.

Hand-written: uvicorn offers no header timeout and no hook for one other than its protocol class
(``uvicorn.Config(http=...)``), and a reverse proxy is not something ``chestclip serve`` can
assume.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0  # a request's headers must have arrived this long after it began


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request's headers are not complete
    ``header_timeout`` seconds after the connection opened or its previous response ended."""

    def __init__(self, *args: Any, header_timeout: float = HEADER_TIMEOUT_S, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the headers are in (or the connection ends)
            self._cancel_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()  # for the next request on this keep-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self.header_deadline = self.loop.call_later(self.header_timeout, self._drop_slow_client)

    def _cancel_header_deadline(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _drop_slow_client(self) -> None:
        self.header_deadline = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()


def protocol_with_header_deadline(header_timeout: float) -> Callable[..., H11Protocol]:
    """What ``uvicorn.Config(http=...)`` takes: the protocol class with this deadline."""
    return functools.partial(HeaderDeadlineProtocol, header_timeout=header_timeout)
