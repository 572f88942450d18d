"""Slow and idle clients on a real uvicorn server on loopback (a bare app: no model needed):
headers that never finish and uploads that never finish are cut off, and open connections are
bounded. Every wait here is bounded too."""

import select
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chestclip.serve import ServerThread
from chestclip.serve.uploads import UploadLimit

pytestmark = pytest.mark.timeout(60)


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"received": len(await request.body())})


def bare_app(upload_seconds: float = 120.0) -> Starlette:
    app = Starlette(routes=[Route("/", echo_size, methods=["GET", "POST"])])
    app.add_middleware(UploadLimit, max_bytes=10_000, seconds=upload_seconds)
    return app


def connect(url: str, count: int) -> list[socket.socket]:
    address = urlsplit(url)
    return [socket.create_connection((address.hostname, address.port)) for _ in range(count)]


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed ``sock`` (end of stream or reset); never blocks."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(4096) == b"" or closed_by_server(sock)
    except OSError:
        return True


def dribble_until_closed(sockets: list[socket.socket], seconds: float) -> list[socket.socket]:
    """Send one header byte per socket every 0.1 s (a slowloris) for at most ``seconds``; return
    the sockets the server has not closed by then."""
    still_open, deadline = list(sockets), time.monotonic() + seconds
    while still_open and time.monotonic() < deadline:
        for sock in list(still_open):
            try:
                sock.sendall(b"a")
            except OSError:
                still_open.remove(sock)
                continue
            if closed_by_server(sock):
                still_open.remove(sock)
        time.sleep(0.1)
    return still_open


def test_clients_that_never_finish_their_headers_are_disconnected():
    with ServerThread(bare_app(), header_timeout=0.5) as url:
        slow = connect(url, 40)
        for sock in slow:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert dribble_until_closed(slow, seconds=5) == []
        assert httpx.get(url, timeout=5).json() == {"received": 0}  # others are still served
    for sock in slow:
        sock.close()


def test_a_keep_alive_connection_gets_the_same_deadline_for_its_next_request():
    with ServerThread(bare_app(), header_timeout=0.5) as url:
        (sock,) = connect(url, 1)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert dribble_until_closed([sock], seconds=3) == []
        sock.close()


def test_an_upload_that_never_finishes_gets_408():
    with ServerThread(bare_app(upload_seconds=0.5)) as url:
        (sock,) = connect(url, 1)
        sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\nxx")
        deadline, answer = time.monotonic() + 5, b""
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            if select.select([sock], [], [], 0.1)[0]:
                answer += sock.recv(4096)
            else:
                sock.sendall(b"x")  # a byte at a time: the body never completes in time
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408")


def test_open_connections_are_bounded():
    with ServerThread(bare_app(), max_connections=4) as url:
        idle = connect(url, 4)
        time.sleep(0.2)  # let the server accept them
        response = httpx.get(url, timeout=5)
        assert response.status_code == 503
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 5
        while httpx.get(url, timeout=5).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(url, timeout=5).status_code == 200
