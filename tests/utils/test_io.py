import json
import os
import re

import pytest

from chestclip.utils.io import atomic_directory, atomic_path, atomic_write_json, atomic_write_text


def test_atomic_file_replaces_whole_and_has_normal_permissions(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise TypeError("interrupted")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_directory_all_or_nothing(tmp_path):
    target = tmp_path / "prepared"
    with atomic_directory(target) as tmp:
        (tmp / "a.csv").write_text("1")
    with pytest.raises(KeyboardInterrupt), atomic_directory(target) as tmp:
        (tmp / "b.csv").write_text("2")
        raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["a.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]


def test_claim_new_path_never_returns_an_existing_name(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from chestclip.utils.io import claim_new_path

    earlier = tmp_path / "scan.png.gradcam.png"
    earlier.write_bytes(b"an earlier run's overlay")
    with ThreadPoolExecutor(4) as pool:
        claimed = list(pool.map(lambda _: claim_new_path(earlier), range(8)))
    assert len(set(claimed)) == 8 and earlier not in claimed
    assert sorted(p.name for p in claimed) == sorted(
        f"scan.png.gradcam-{n}.png" for n in range(2, 10)
    )
    assert earlier.read_bytes() == b"an earlier run's overlay"


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporary_directories_of_dead_processes_are_removed(tmp_path):
    import socket

    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())
    stale = tmp_path / f".prepared.{host}-{_dead_pid()}.k3j2h1g0.tmp"
    (stale / "images.npy").parent.mkdir()
    (stale / "images.npy").write_bytes(b"\0" * 1000)
    kept = [
        tmp_path / f".prepared.{host}-{os.getpid()}.a1b2c3d4.tmp",  # its process runs: in use
        tmp_path / f".prepared.otherhost-{_dead_pid()}.a1b2c3d4.tmp",  # another host's process
        tmp_path / ".prepared.a1b2c3d4.tmp",  # no owner in the name: not provably ours
        tmp_path / f".heads.{host}-{_dead_pid()}.a1b2c3d4.tmp",  # another target's
        tmp_path / "user-data",
    ]
    for folder in kept:
        folder.mkdir()
    with atomic_directory(tmp_path / "prepared") as tmp:
        (tmp / "summary.json").write_text("{}")
    assert not stale.exists() and all(folder.is_dir() for folder in kept)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["prepared"] + [k.name for k in kept]
    )
