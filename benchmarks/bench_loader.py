"""Loader throughput: the prepared memory-mapped array vs decoding the source PNGs.

Generates phantoms at about the real images' size (2,048 px by default), prepares them at 224 px,
then in one run times (a) reading training items from the prepared array and (b) decoding and
resizing the source PNGs, as a loader without the cache would. Prints images/s and the ratio.

    python benchmarks/bench_loader.py [--studies 60] [--source-size 2048] [--size 224] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from torch.utils.data import DataLoader

from chestclip.config import PrepareConfig
from chestclip.data import PreparedData, XrayReportDataset, prepare_dataset
from chestclip.data.images import load_xray
from chestclip.phantom import generate_phantoms


def images_per_second(run, count: int, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=60)
    parser.add_argument("--source-size", type=int, default=2048)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for (c)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        source, prepared = Path(tmp) / "source", Path(tmp) / "prepared"
        generate_phantoms(
            source, studies=args.studies, image_size=args.source_size, layout="kaggle"
        )
        start = time.perf_counter()
        prepare_dataset(source, prepared, PrepareConfig(image_size=args.size))
        prepare_seconds = time.perf_counter() - start

        data = PreparedData(prepared)
        dataset = XrayReportDataset(data)
        files = data.images["file"].tolist()
        n = len(dataset)

        def read_cache() -> None:
            for i in range(n):
                dataset[i]

        def decode_sources() -> None:
            for path in files:
                load_xray(path, args.size)

        def cache_loader() -> None:
            for _ in DataLoader(dataset, batch_size=32, num_workers=args.workers):
                pass

        cached = images_per_second(read_cache, n)
        decoded = images_per_second(decode_sources, n, repeats=1)
        loader = images_per_second(cache_loader, n)
    result = {
        "images": n,
        "source_px": args.source_size,
        "prepared_px": args.size,
        "prepare_seconds": round(prepare_seconds, 2),
        "prepared_array_images_per_s": round(cached, 1),
        "prepared_dataloader_images_per_s": round(loader, 1),
        "decode_png_images_per_s": round(decoded, 1),
        "speedup_array_vs_decode": round(cached / decoded, 1),
    }
    for key, value in result.items():
        print(f"{key:36s} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
