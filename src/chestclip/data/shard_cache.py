"""Build the sharded image cache for ``prepare``: parallel across processes, bounded memory,
resumable after a kill.

Work happens in ``.<out>.shards-partial/`` beside the output: ``plan.json`` (what the shards hold:
image files, size, resize, shard size), the finished shards under ``shards/`` and one
``shard-NNNNNN.json`` per shard (its undecodable images and member offsets), written after the
shard itself. A rerun with the same plan keeps every finished shard and writes only the others;
a different plan starts afresh. Each worker process decodes one shard at a time and at most
``2 × workers`` shards are queued, so memory stays at a few shards whatever the dataset's size.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from chestclip.data.images import ResizeMode
from chestclip.data.records import Skipped
from chestclip.data.shards import (
    INDEX_FILE,
    SHARDS_DIR,
    build_index,
    shard_name,
    write_shard,
)
from chestclip.errors import ChestClipError
from chestclip.utils.io import atomic_path, atomic_write_json

SHARDS_ABOVE_BYTES = 4 * 2**30  # ``cache: auto`` shards a dataset whose array would exceed this
PLAN_VERSION = 1


def choose_cache(requested: str, n_images: int, image_size: int, archive: str | None) -> str:
    """``array`` (one memory-mapped images.npy) or ``shards``; ``auto`` shards above
    SHARDS_ABOVE_BYTES. Images inside a tar archive can only go into the array."""
    if requested == "shards" and archive is not None:
        raise ChestClipError(
            f"{archive}: the sharded cache reads image files; extract the archive or use "
            "--cache array"
        )
    if requested != "auto":
        return requested
    too_big = n_images * image_size * image_size > SHARDS_ABOVE_BYTES
    return "shards" if too_big and archive is None else "array"


def work_directory(out: Path) -> Path:
    return out.parent / f".{out.name}.shards-partial"


def _plan(files: list[str], size: int, resize: str, shard_size: int) -> dict[str, Any]:
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()
    return {"version": PLAN_VERSION, "images": len(files), "files_sha256": digest,
            "image_size": size, "resize": resize, "shard_size": shard_size}  # fmt: skip


def _run_tasks(
    tasks: list[tuple[int, range, list[str]]], job: Callable[..., Any], workers: int
) -> Iterator[tuple[int, Any]]:
    """(shard number, ``job(*task)``) as shards finish: ``workers`` processes, at most
    2 × workers tasks queued (each task carries only its own shard's file names)."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task[0], job(*task)
        return
    # the platform's default start method, as torch's DataLoader: fork on Linux (no re-import)
    with ProcessPoolExecutor(workers) as pool:
        pending: dict[Future, int] = {}
        queue = iter(tasks)
        while True:
            for task in queue:
                pending[pool.submit(job, *task)] = task[0]
                if len(pending) >= 2 * workers:
                    break
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()


@dataclass(frozen=True)
class _ShardJob:
    """Writes one shard (picklable for the process pool)."""

    shards: Path
    size: int
    resize: ResizeMode

    def __call__(self, number: int, positions: range, files: list[str]) -> dict[str, Any]:
        path = self.shards / shard_name(number)
        return write_shard(path, positions, files, self.size, self.resize)


def build_shards(
    files: list[str],
    work: Path,
    size: int,
    resize: ResizeMode,
    shard_size: int,
    workers: int,
    progress: Callable[[int], None] = lambda n: None,
) -> tuple[pd.DataFrame, dict[str, str], dict[str, int]]:
    """Decode ``files`` into tar shards under ``work/shards``, reusing finished ones.

    Returns the shard index (``shards.INDEX_COLUMNS``, rows in ``files`` order, undecodable
    images left out), {key: reason} of the undecodable images, and counts of shards written and
    reused. ``progress(n)`` is called with the number of images of each finished shard.
    """
    plan = _plan(files, size, resize, shard_size)
    plan_file, shards = work / "plan.json", work / SHARDS_DIR
    if plan_file.is_file() and json.loads(plan_file.read_text()) != plan:
        shutil.rmtree(work)
    shards.mkdir(parents=True, exist_ok=True)
    atomic_write_json(plan_file, plan)
    for stale in shards.glob(".*.tmp"):  # a shard being written when the last run was killed
        stale.unlink()
    tasks = [
        (number, range(start, min(start + shard_size, len(files))))
        for number, start in enumerate(range(0, len(files), shard_size))
    ]
    results: dict[int, dict[str, Any]] = {}
    for number, positions in tasks:
        record = work / f"{shard_name(number)}.json"
        if record.is_file() and (shards / shard_name(number)).is_file():
            results[number] = json.loads(record.read_text())
            progress(len(positions))
    todo = [(n, positions, files[positions.start : positions.stop]) for n, positions in tasks
            if n not in results]  # fmt: skip
    for number, result in _run_tasks(todo, _ShardJob(shards, size, resize), workers):
        atomic_write_json(work / f"{shard_name(number)}.json", result)
        results[number] = result
        progress(len(tasks[number][1]))
    errors = {key: reason for r in results.values() for key, reason in r["errors"].items()}
    index = build_index({number: r["members"] for number, r in results.items()})
    return index, errors, {"shards_written": len(todo), "shards_reused": len(tasks) - len(todo)}


def cache_as_shards(
    images: pd.DataFrame,
    work: Path,
    size: int,
    resize: ResizeMode,
    shard_size: int,
    workers: int,
    skipped: list[Skipped],
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``prepare``'s sharded counterpart of decoding into images.npy: the images table without
    the undecodable images (listed in ``skipped``) and ``row`` pointing into the shard index,
    which is written to ``work/shards/index.csv``; plus the shard counts."""
    files = images["file"].tolist()
    with tqdm(total=len(files), desc="decoding into shards", unit="img", disable=None) as bar:
        index, errors, counts = build_shards(
            files, work, size, resize, shard_size, workers, bar.update
        )
    for key, reason in sorted(errors.items()):
        position = int(key)
        skipped.append(Skipped("image", images.at[position, "image_id"], reason, files[position]))
    with atomic_path(work / SHARDS_DIR / INDEX_FILE) as tmp:
        index.to_csv(tmp, index=False)
    kept = images.iloc[index["key"].astype(int).to_numpy()]
    return kept.assign(row=index["row"].to_numpy()).reset_index(drop=True), counts


def move_shards(work: Path, out: Path) -> None:
    """Move the finished shards into the output directory and drop the work directory."""
    (work / SHARDS_DIR).replace(out / SHARDS_DIR)
    shutil.rmtree(work)
