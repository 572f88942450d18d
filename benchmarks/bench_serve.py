"""`chestclip serve` under load on loopback: requests/s and p50/p95 latency per request with 1 and
several concurrent clients (threads, one httpx client each), for ``GET /api/health`` (the HTTP
stack alone) and ``POST /api/predict`` (upload, decode, every head, heat map, zones, drafts).

The run is the demo's (tiny model) when it exists, else a small demo run built here; the upload
is a 1,024-px phantom chest X-ray PNG. Bounded: a fixed number of requests to 127.0.0.1 only.

    python benchmarks/bench_serve.py [--run runs/demo/run] [--clients 4] [--requests 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch

from chestclip.phantom import generate_phantoms
from chestclip.pipeline import run_demo
from chestclip.serve import ServerThread, create_app
from chestclip.utils.run_layout import RunLayout


def load(url: str, send: Callable[[httpx.Client], httpx.Response], clients: int, total: int):
    """``total`` requests shared by ``clients`` threads → (wall seconds, latencies [total])."""

    def worker(count: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=url, timeout=120) as client:
            for _ in range(count):
                start = time.perf_counter()
                send(client).raise_for_status()
                latencies.append(time.perf_counter() - start)
        return latencies

    shares = [total // clients + (i < total % clients) for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = [t for part in pool.map(worker, shares) for t in part]
    return time.perf_counter() - start, np.array(latencies)


def report(name: str, clients: int, seconds: float, latencies: np.ndarray) -> None:
    p50, p95 = np.percentile(latencies, [50, 95]) * 1000
    print(
        f"{name:14s} {clients:2d} client(s): {len(latencies) / seconds:8.1f} requests/s, "
        f"p50 {p50:7.1f} ms, p95 {p95:7.1f} ms ({len(latencies)} requests)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo/run"))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=60, help="per load level")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if not RunLayout(run).heads.is_dir():
            print(f"{run}: no trained run; building a small demo run (about a minute)")
            run = run_demo(Path(tmp) / "demo", studies=200, n_boot=0, log=lambda _: None).run
        generate_phantoms(Path(tmp) / "upload", studies=1, image_size=1024, seed=3)
        png = sorted((Path(tmp) / "upload" / "NLMCXR_png").glob("*.png"))[0]
        payload = png.read_bytes()
        print(
            f"run {run}, upload {png.name} ({len(payload) / 1024:.0f} KiB), {args.threads} threads"
        )

        def health(client: httpx.Client) -> httpx.Response:
            return client.get("/api/health")

        def predict(client: httpx.Client) -> httpx.Response:
            return client.post("/api/predict", files={"file": ("xray.png", payload, "image/png")})

        with ServerThread(create_app(run)) as url:
            load(url, predict, 1, 3)  # warm-up
            for name, send in (("GET health", health), ("POST predict", predict)):
                for clients in dict.fromkeys((1, args.clients)):
                    report(name, clients, *load(url, send, clients, args.requests))


if __name__ == "__main__":
    main()
