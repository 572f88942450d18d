"""Running the app with uvicorn: in the foreground (``chestclip serve``) or from a background
thread (tests, benchmarks)."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from chestclip.inference.predict import Predictor
from chestclip.serve.app import DEFAULT_MAX_UPLOAD_BYTES, create_app

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    run_dir: str | Path,
    host: str = LOOPBACK,
    port: int = 8000,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    log: Callable[[str], None] = print,
    runtime: str = "eager",
) -> None:
    """Load ``run_dir`` and serve the viewer until interrupted (Ctrl+C); ``runtime="onnx"``
    scores with the run's ONNX export (heat maps still from PyTorch)."""
    app = create_app(run_dir, max_upload_bytes, predictor=Predictor.load(run_dir, runtime))
    if not is_loopback(host):
        log(f"warning: listening on {host}: anyone who can reach it can upload images")
    log(f"chestclip viewer for {Path(run_dir)} on http://{host}:{port} (research use only)")
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info")).run()


class ServerThread:
    """``with ServerThread(app) as url:`` serves ``app`` from a daemon thread on ``host`` (port
    0: a free one, read back once bound) and stops it when the block ends."""

    def __init__(
        self, app: FastAPI, host: str = LOOPBACK, port: int = 0, startup_seconds: float = 30.0
    ) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning")
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
