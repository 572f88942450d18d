"""The sharded image cache: same images as images.npy, random access, streaming across ranks and
workers, skipped images, and a prepare killed midway that resumes to byte-identical shards."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from chestclip.config import PrepareConfig
from chestclip.data import PreparedData, XrayReportDataset, prepare_dataset
from chestclip.data.shard_cache import build_shards, choose_cache, work_directory
from chestclip.data.streaming import ShardStream


def write_noise_manifest(folder: Path, n: int, size: int = 40, seed: int = 0) -> Path:
    """``n`` noise PNGs in a manifest (two views per study, two studies per patient)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        path = folder / "img" / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path)
        rows.append({"image": f"img/{i:05d}.png", "patient_id": f"P{i // 4}",
                     "study_id": f"S{i // 2}", "findings": f"text {i // 2}",
                     "label": (i // 2) % 2, "Edema": (i // 4) % 2})  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


@pytest.fixture(scope="module")
def prepared_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    csv = write_noise_manifest(root / "source", 90)
    array = prepare_dataset(csv, root / "array", PrepareConfig(image_size=16, cache="array"))
    config = PrepareConfig(image_size=16, cache="shards", shard_size=7, workers=2)
    shards = prepare_dataset(csv, root / "shards", config)
    return PreparedData(array.out), PreparedData(shards.out), shards.counts


def test_shards_hold_the_array_images(prepared_pair):
    array, shards, counts = prepared_pair
    assert (array.cache, shards.cache, counts["cache"]) == ("array", "shards", "shards")
    assert counts["shards_written"] == 13 and not work_directory(shards.root).exists()
    assert array.images.equals(shards.images) and array.studies.equals(shards.studies)
    assert shards.array.shape == array.array.shape == (90, 16, 16)
    assert np.array_equal(shards.array[np.arange(90)], np.asarray(array.array))
    assert np.array_equal(shards.array[5], array.array[5])
    assert np.array_equal(shards.array[10:3:-2], array.array[10:3:-2])
    clone = pickle.loads(pickle.dumps(shards.array))  # DataLoader workers reopen the files
    assert np.array_equal(clone[[3, 80]], array.array[[3, 80]])
    item_a, item_s = XrayReportDataset(array, "val")[2], XrayReportDataset(shards, "val")[2]
    assert item_a["image"].equal(item_s["image"]) and item_a["findings"].equal(item_s["findings"])


def test_stream_reads_every_item_of_a_split_once(prepared_pair):
    _, shards, _ = prepared_pair
    expected = sorted(shards.split_images("train")["image_id"])
    items = list(ShardStream(shards, "train", resampled=False))
    assert sorted(i["image_id"] for i in items) == expected
    by_id = {i["image_id"]: i for i in items}
    reference = XrayReportDataset(shards, "train")[0]
    assert by_id[reference["image_id"]]["image"].equal(reference["image"])
    assert by_id[reference["image_id"]]["text"] == reference["text"]


def test_ranks_split_shards_and_resampling_gives_equal_shares(prepared_pair, monkeypatch):
    _, shards, _ = prepared_pair
    n_train = len(shards.split_images("train"))
    seen, counts = [], []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        seen.append({i["image_id"] for i in ShardStream(shards, "train", resampled=False)})
        stream = ShardStream(shards, "train", seed=3)
        first, again = [i["image_id"] for i in stream], [i["image_id"] for i in stream]
        counts.append(len(first))
        assert len(stream) == len(first) == len(again) == -(-n_train // 2)
        assert first != again  # a new epoch draws other shards and another order
        assert first == [i["image_id"] for i in ShardStream(shards, "train", seed=3)]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == n_train
    assert counts[0] == counts[1]


def test_undecodable_images_are_skipped_and_listed(tmp_path):
    csv = write_noise_manifest(tmp_path / "source", 12)
    (tmp_path / "source/img/00003.png").write_bytes(b"not a png")
    (tmp_path / "source/img/00007.png").unlink()
    config = PrepareConfig(image_size=16, cache="shards", shard_size=5, workers=1)
    summary = prepare_dataset(csv, tmp_path / "p", config)
    reasons = {s["id"]: s["reason"].split(":")[0] for s in summary.skipped}
    assert reasons == {"00003": "undecodable image", "00007": "file missing"}
    data = PreparedData(tmp_path / "p")
    assert len(data.array) == len(data.images) == 10
    assert "00003" not in set(data.images["image_id"])


def test_cache_choice_by_size():
    assert choose_cache("auto", 7_470, 224, None) == "array"  # IU X-Ray: 0.4 GB
    assert choose_cache("auto", 377_110, 224, None) == "shards"  # MIMIC-CXR-JPG: 19 GB
    assert choose_cache("auto", 377_110, 224, "NLMCXR_png.tgz") == "array"
    with pytest.raises(ValueError, match="extract the archive"):
        choose_cache("shards", 10, 224, "NLMCXR_png.tgz")


def _prepare_command(csv: Path, out: Path, size: int) -> list[str]:
    return [sys.executable, "-c", "from chestclip.cli import main; main()", "prepare",
            "--source", str(csv), "--out",
            str(out), "--image-size", str(size), "--cache", "shards", "--shard-size", "3",
            "--workers", "1"]  # fmt: skip


@pytest.mark.slow
def test_prepare_killed_midway_resumes_to_byte_identical_shards(tmp_path):
    csv = write_noise_manifest(tmp_path / "source", 300, size=96)
    out = tmp_path / "killed"
    work = work_directory(out)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(_prepare_command(csv, out, 64), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(work.glob("shard-*.json"))) < 5 and process.poll() is None:
        assert time.monotonic() < deadline, "prepare wrote no shard in 120 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists(), "prepare finished before it could be killed"
    done = len(list(work.glob("shard-*.json")))
    assert 5 <= done < 100
    config = PrepareConfig(image_size=64, cache="shards", shard_size=3, workers=1)
    resumed = prepare_dataset(csv, out, config).counts
    assert resumed["shards_reused"] >= done and resumed["shards_written"] > 0
    assert resumed["shards_reused"] + resumed["shards_written"] == 100
    fresh = prepare_dataset(csv, tmp_path / "fresh", config).counts
    assert fresh["shards_reused"] == 0
    for shard in sorted((tmp_path / "fresh/shards").iterdir()):
        assert (out / "shards" / shard.name).read_bytes() == shard.read_bytes(), shard.name


def test_a_changed_plan_starts_the_shards_afresh(tmp_path):
    csv = write_noise_manifest(tmp_path / "source", 12)
    out = tmp_path / "p"
    work = work_directory(out)
    config = PrepareConfig(image_size=16, cache="shards", shard_size=4, workers=1)
    files = [str(tmp_path / "source/img" / f"{i:05d}.png") for i in range(12)]
    build_shards(files, work, 16, "pad", 4, 1)  # a run that stopped before its tables
    assert prepare_dataset(csv, out, config).counts["shards_reused"] == 3
    build_shards(files, work, 16, "pad", 4, 1)
    counts = prepare_dataset(csv, out, config.model_copy(update={"image_size": 20})).counts
    assert (counts["shards_reused"], counts["shards_written"]) == (0, 3)


def test_shards_read_from_an_fsspec_url_or_a_pipe(prepared_pair):
    import fsspec

    _, local, _ = prepared_pair
    memory = fsspec.filesystem("memory")
    for shard in (local.root / "shards").glob("*.tar"):
        memory.pipe(f"/bucket/shards/{shard.name}", shard.read_bytes())
    remote = PreparedData(local.root, shards_url="memory://bucket/shards")
    assert np.array_equal(remote.array[[0, 44, 89]], local.array[[0, 44, 89]])
    expected = sorted(local.split_images("val")["image_id"])
    streamed = ShardStream(remote, "val", resampled=False)
    assert sorted(i["image_id"] for i in streamed) == expected
    piped = PreparedData(local.root, shards_url=f"pipe:cat {local.root / 'shards'}")
    assert sorted(i["image_id"] for i in ShardStream(piped, "val", resampled=False)) == expected
