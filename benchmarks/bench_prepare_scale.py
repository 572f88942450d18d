"""prepare and the training loader at scale: a phantom MIMIC-CXR-JPG set of ≥ 20,000 images.

Generates phantom studies in the MIMIC-CXR-JPG layout at a small size (128 px JPEGs, so that
20,000 images fit two CPU cores), then measures, each in a fresh subprocess so peak memory is
its own:

- ``prepare`` into the sharded cache (worker processes) and into the single images.npy array
  (threads): images/s and the peak resident memory of the largest process;
- the training loaders on the train split: WebDataset streaming of the tar shards
  (``ShardStream``, whole batches per worker), the shards read by offset (``ShardArray``), the
  memory-mapped images.npy, and fixed-size numpy shards (the alternative the cache format was
  chosen against), in images/s through a DataLoader;
- decoding images as a loader without a cache would: the small JPEG sources, and full-size
  2,048-px PNGs to 224 px as ``bench_loader.py`` does (today's baseline), for the ratios with the
  stream at 224 px (in-process items, as ``bench_loader.py`` reads its cache, and through a
  DataLoader).

    nice -n 10 python benchmarks/bench_prepare_scale.py [--studies 10600] [--workers 2]
        [--keep DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, default_collate

from chestclip.data import PreparedData, XrayReportDataset
from chestclip.data.images import load_xray
from chestclip.data.streaming import ShardStream
from chestclip.phantom import generate_phantoms

BATCH = 256


PEAKS = (
    "import json, resource\n"
    "peaks = [resource.getrusage(w).ru_maxrss / 1024 for w in "
    "(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]\n"  # KiB on Linux
    "print(json.dumps(peaks))\n"
)


def run_measured(code: str) -> tuple[float, float, float]:
    """Run ``code`` in a fresh Python: (seconds, peak RSS in MiB of that process, and of the
    largest of its worker processes)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + PEAKS], check=True, capture_output=True)
    seconds = time.perf_counter() - start
    main_peak, worker_peak = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return seconds, main_peak, worker_peak


def prepare_code(source: Path, out: Path, size: int, cache: str, workers: int) -> str:
    return (
        "from chestclip.config import PrepareConfig\n"
        "from chestclip.data import prepare_dataset\n"
        f"prepare_dataset({str(source)!r}, {str(out)!r}, PrepareConfig(image_size={size}, "
        f"cache={cache!r}, workers={workers}, shard_size=1000))\n"
    )


def loader_speed(dataset, workers: int, batched_dataset: bool = False) -> float:
    """Images/s of the second epoch through a DataLoader with ``workers`` persistent processes
    (the first pays for starting them)."""
    options = {"num_workers": workers, "persistent_workers": workers > 0}
    loader = (
        DataLoader(dataset, batch_size=None, **options)
        if batched_dataset
        else DataLoader(dataset, batch_size=BATCH, shuffle=True, **options)
    )
    for _ in loader:
        pass
    start, count = time.perf_counter(), 0
    for batch in loader:
        count += len(batch["image"])
    return count / (time.perf_counter() - start)


class NumpyShardArray:
    """The alternative format: the same images as fixed-size .npy shards, memory-mapped, read
    like the cache (``array[row]``), so the same ``XrayReportDataset`` items come out."""

    def __init__(self, array: np.ndarray, folder: Path, size: int = 1000):
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(array), size):
            np.save(folder / f"{start // size:06d}.npy", np.asarray(array[start : start + size]))
        self.folder, self.size, self.shape = folder, size, array.shape
        self.bytes = sum(p.stat().st_size for p in folder.iterdir())
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, row: int) -> np.ndarray:
        shard, offset = divmod(int(row), self.size)
        if shard not in self._maps:
            self._maps[shard] = np.load(self.folder / f"{shard:06d}.npy", mmap_mode="r")
        return self._maps[shard][offset]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": {}}


def images_per_second(run, count: int) -> float:
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=10600, help="≈ 1.9 images per study")
    parser.add_argument("--source-size", type=int, default=128)
    parser.add_argument("--size", type=int, default=64, help="the prepared cache's image size")
    parser.add_argument("--workers", type=int, default=2, help="prepare processes, loader workers")
    parser.add_argument("--keep", type=Path, help="reuse/keep the phantoms and caches here")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        source = root / "phantom-mimic"
        if not source.exists():
            start = time.perf_counter()
            generate_phantoms(source, args.studies, args.source_size, "mimic", visibility=2.0)
            print(f"phantoms: {time.perf_counter() - start:.0f} s")
        result: dict = {"source_px": args.source_size, "prepared_px": args.size}
        for cache in ("shards", "array"):
            out = root / f"prepared-{cache}"
            if out.exists():
                subprocess.run(["rm", "-rf", str(out)], check=True)
            code = prepare_code(source, out, args.size, cache, args.workers)
            seconds, main_peak, worker_peak = run_measured(code)
            data = PreparedData(out)
            result["images"] = len(data.images)
            result[f"prepare_{cache}_images_per_s"] = round(len(data.images) / seconds, 1)
            result[f"prepare_{cache}_peak_rss_mib"] = round(main_peak, 1)
            result[f"prepare_{cache}_worker_peak_rss_mib"] = round(worker_peak, 1)
        shards, array = (
            PreparedData(root / "prepared-shards"),
            PreparedData(root / "prepared-array"),
        )
        result["shards_mib"] = round(
            sum(p.stat().st_size for p in (shards.root / "shards").iterdir()) / 2**20, 1
        )
        result["array_mib"] = round((array.root / "images.npy").stat().st_size / 2**20, 1)
        stream = ShardStream(shards, "train", batch_size=BATCH, collate=_collate_images)
        result["loader_webdataset_stream_images_per_s"] = round(
            loader_speed(stream, args.workers, batched_dataset=True), 1
        )
        result["loader_shards_by_offset_images_per_s"] = round(
            loader_speed(XrayReportDataset(shards, "train"), args.workers), 1
        )
        result["loader_memmap_array_images_per_s"] = round(
            loader_speed(XrayReportDataset(array, "train"), args.workers), 1
        )
        numpy_shards = NumpyShardArray(array.array, root / "numpy-shards")
        result["numpy_shards_mib"] = round(numpy_shards.bytes / 2**20, 1)
        reader = PreparedData(array.root)
        reader._array = numpy_shards  # the same tables, the other format underneath
        result["loader_numpy_shards_images_per_s"] = round(
            loader_speed(XrayReportDataset(reader, "train"), args.workers), 1
        )
        files = shards.split_images("train")["file"].tolist()[:2000]
        result["decode_source_jpeg_images_per_s"] = round(
            images_per_second(lambda: [load_xray(f, args.size) for f in files], len(files)), 1
        )
        full = root / "full-size"
        if not full.exists():
            generate_phantoms(full, 12, 2048, "kaggle")
        pngs = sorted((full / "images/images_normalized").glob("*.png"))
        result["decode_2048px_png_to_224_images_per_s"] = round(
            images_per_second(lambda: [load_xray(str(p), 224) for p in pngs], len(pngs)), 2
        )
        # the stream at the paper's 224 px, on a smaller set (its speed per image does not
        # depend on the number of images)
        source_224, out_224 = root / "phantom-mimic-256", root / "prepared-shards-224"
        if not source_224.exists():
            generate_phantoms(source_224, 1000, 256, "mimic")
        if not out_224.exists():
            run_measured(prepare_code(source_224, out_224, 224, "shards", args.workers))
        data_224 = PreparedData(out_224)
        items = ShardStream(data_224, "train", resampled=False)  # in-process, as bench_loader.py
        count = len(data_224.split_images("train"))
        result["stream_224px_in_process_images_per_s"] = round(
            images_per_second(lambda: sum(1 for _ in items), count), 1
        )
        batches = ShardStream(data_224, "train", batch_size=64, collate=_collate_images)
        result["stream_224px_dataloader_images_per_s"] = round(
            loader_speed(batches, args.workers, batched_dataset=True), 1
        )
    decode = result["decode_2048px_png_to_224_images_per_s"]
    result["stream_224px_in_process_vs_png_decode"] = round(
        result["stream_224px_in_process_images_per_s"] / decode
    )
    result["stream_224px_dataloader_vs_png_decode"] = round(
        result["stream_224px_dataloader_images_per_s"] / decode
    )
    for key, value in result.items():
        print(f"{key:42s} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def _collate_images(items: list[dict]) -> dict:
    """The images of a batch, stacked as ``PairCollator`` stacks them."""
    return {"image": default_collate([item["image"] for item in items])}


if __name__ == "__main__":
    main()
