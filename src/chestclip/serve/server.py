"""Running the app with uvicorn: in the foreground (``chestclip serve``), or from a background
thread or a child process (tests, benchmarks)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from chestclip.data.limits import DEFAULT_MAX_PIXELS
from chestclip.errors import ChestClipError
from chestclip.inference.predict import Predictor
from chestclip.serve.app import DEFAULT_MAX_UPLOAD_BYTES, create_app
from chestclip.serve.connections import HEADER_TIMEOUT_S, protocol_with_header_deadline
from chestclip.serve.security import TOKEN_ENV, allowed_hosts, is_loopback

LOOPBACK = "127.0.0.1"
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this (uvicorn's default)
MAX_CONNECTIONS = 64  # open connections beyond which new requests get 503


def server_config(
    app: FastAPI,
    host: str,
    port: int,
    log_level: str = "info",
    header_timeout: float = HEADER_TIMEOUT_S,
    max_connections: int = MAX_CONNECTIONS,
) -> uvicorn.Config:
    """uvicorn's settings for ``app``: a deadline for each request's headers, a keep-alive
    timeout and a limit on open connections, so slow or idle clients cannot hold the server."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=protocol_with_header_deadline(header_timeout),
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=max_connections,
    )


def serve(
    run_dir: str | Path,
    host: str = LOOPBACK,
    port: int = 8000,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    log: Callable[[str], None] = print,
    token: str | None = None,
    allow_hosts: Sequence[str] = (),
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: str | None = None,
    runtime: str = "eager",
) -> None:
    """Load ``run_dir`` (the model on ``device``, default CUDA when available) and serve the
    viewer until interrupted (Ctrl+C). Beyond loopback a ``token`` is required;
    ``allow_hosts``: the names clients use to reach the server; ``runtime="onnx"`` scores with
    the run's ONNX export (heat maps still from PyTorch)."""
    if not is_loopback(host) and not token:
        raise ChestClipError(
            f"listening on {host} needs a token: pass --token or set {TOKEN_ENV} "
            "(clients then send Authorization: Bearer <token>)"
        )
    hosts = allowed_hosts(host, allow_hosts)
    predictor = Predictor.load(run_dir, device, runtime)
    app = create_app(
        run_dir,
        max_upload_bytes,
        predictor=predictor,
        hosts=hosts,
        token=token,
        max_pixels=max_pixels,
    )
    if not is_loopback(host):
        log(f"warning: listening on {host}: anyone who has the token can upload images")
    shown = f"[{host}]" if ":" in host else host
    page = f"http://{shown}:{port}/" + ("#token=<token>" if token else "")
    log(f"chestclip viewer for {Path(run_dir).name} on {page} (research use only)")
    log(f"answering to Host: {', '.join(hosts)}")
    uvicorn.Server(server_config(app, host, port)).run()


class ServerThread:
    """``with ServerThread(app) as url:`` serves ``app`` from a daemon thread on ``host`` (port
    0: a free one, read back once bound) and stops it when the block ends; ``limits`` are
    ``server_config``'s."""

    def __init__(
        self,
        app: FastAPI,
        host: str = LOOPBACK,
        port: int = 0,
        startup_seconds: float = 30.0,
        **limits: float,
    ) -> None:
        config = server_config(app, host, port, log_level="warning", **limits)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.host, self.startup_seconds = host, startup_seconds

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.startup_seconds
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                raise RuntimeError(f"uvicorn did not start on {self.host}")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}"

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ServerProcess:
    """``with ServerProcess(run, *options) as url:`` runs ``chestclip serve --run RUN --port
    <free> OPTIONS`` in a child process (what a user runs, so its memory can be measured alone:
    ``self.process.pid``) and stops it when the block ends."""

    def __init__(
        self, run: str | Path, *options: str, startup_seconds: float = 300.0, **popen: Any
    ) -> None:
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            self.port = probe.getsockname()[1]
        self.command = [sys.executable, "-c", "from chestclip.cli import main; main()", "serve"]
        self.command += ["--run", str(run), "--port", str(self.port), *options]
        self.startup_seconds, self.popen = startup_seconds, popen

    def __enter__(self) -> str:
        self.process = subprocess.Popen(self.command, **self.popen)
        url, deadline = f"http://{LOOPBACK}:{self.port}", time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/api/health", timeout=5):
                    return url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"chestclip serve did not start: {' '.join(self.command)}")

    def __exit__(self, *exc_info: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
