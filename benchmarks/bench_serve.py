"""`chestclip serve` under load on loopback: requests/s and p50/p95 latency per request with 1 and
several concurrent clients (threads, one httpx client each), for ``GET /api/health`` (the HTTP
stack alone) and ``POST /api/predict`` (upload, decode, every head, heat map, zones, drafts).
Then a bomb mix against ``chestclip serve`` run as a child process: ``--bombs`` decompression
bombs at once (16-bit PNGs and deflated DICOMs of 13,000² pixels, alternately) with valid
uploads among them; the server's peak resident memory above its warmed-up level (from /proc,
Linux) and the valid uploads' latency meanwhile.

The run is the demo's (tiny model) when it exists, else a small demo run built here; the upload
is a 1,024-px phantom chest X-ray PNG. Bounded: a fixed number of requests to 127.0.0.1 only.

    python benchmarks/bench_serve.py [--run runs/demo/run] [--clients 4] [--requests 60]
        [--bombs 12]
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
from chestclip.phantom.bombs import write_deflated_dicom_bomb, write_png_bomb
from chestclip.pipeline import run_demo
from chestclip.serve import ServerThread, create_app
from chestclip.serve.server import ServerProcess
from chestclip.utils.memory import reset_peak, resident_bytes
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


def bomb_mix(run: Path, payload: bytes, folder: Path, bombs: int) -> None:
    """``bombs`` bombs and as many valid uploads at once against a `chestclip serve` child."""
    side = 13_000
    made = [
        write_png_bomb(folder / "bomb.png", side),
        write_deflated_dicom_bomb(folder / "bomb.dcm", side),
    ]
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1024:.0f} KiB" for p in made)
    valid = ("xray.png", payload)
    mix = [(made[i % 2].name, made[i % 2].read_bytes()) for i in range(bombs)] + [valid] * bombs
    server = ServerProcess(run)
    with server as url, httpx.Client(base_url=url, timeout=300) as client:

        def post(item: tuple[str, bytes]) -> tuple[int, float]:
            start = time.perf_counter()
            status = client.post("/api/predict", files={"file": item}).status_code
            return status, time.perf_counter() - start

        post(valid)  # warm-up
        pid = server.process.pid
        reset_peak(pid)
        before, _ = resident_bytes(pid)
        with ThreadPoolExecutor(max_workers=len(mix)) as pool:
            answers = list(pool.map(post, mix))
        _, peak = resident_bytes(pid)
    refused = sum(status == 400 for status, _ in answers[:bombs])
    served = [seconds for status, seconds in answers[bombs:] if status == 200]
    print(
        f"bomb mix: {bombs} bombs ({side:,}² pixels: {sizes}) + {bombs} valid uploads at once: "
        f"{refused}/{bombs} bombs refused (400), {len(served)}/{bombs} valid answered (p50 "
        f"{np.median(served) * 1000:.0f} ms); server resident memory {before / 2**20:.0f} MiB "
        f"warm, peak +{(peak - before) / 2**20:.0f} MiB during the mix"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/demo/run"))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=60, help="per load level")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--bombs", type=int, default=12, help="bombs at once (0: no bomb mix)")
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
        if args.bombs:
            bomb_mix(run, payload, Path(tmp), args.bombs)


if __name__ == "__main__":
    main()
