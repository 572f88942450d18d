"""Stale and partial sources: a truncated archive or an empty result is an error unless
``allow_partial`` keeps it (and summary.json says so); the source fingerprint follows the files."""

import json
import shutil
import sys
import tarfile

import pytest

from chestclip.cli import main
from chestclip.config import PrepareConfig
from chestclip.data import PreparedData, prepare_dataset
from chestclip.data.fingerprint import source_fingerprint
from chestclip.data.prepare import PartialSourceError
from chestclip.errors import ChestClipError

REPORTS, PNGS = "NLMCXR_reports.tgz", "NLMCXR_png.tgz"


@pytest.fixture(scope="module")
def archives(phantom_openi, tmp_path_factory):
    """The phantom OpenI source as the two archives OpenI serves, whole."""
    folder = tmp_path_factory.mktemp("archives")
    with tarfile.open(folder / REPORTS, "w:gz") as tar:
        tar.add(phantom_openi / "ecgen-radiology", "ecgen-radiology")
    with tarfile.open(folder / PNGS, "w:gz") as tar:
        for png in sorted((phantom_openi / "NLMCXR_png").glob("*.png")):
            tar.add(png, png.name)
    return folder


def truncated_copy(archives, tmp_path, name):
    source = tmp_path / "source"
    shutil.copytree(archives, source)
    data = (source / name).read_bytes()
    (source / name).write_bytes(data[: len(data) // 2])
    return source


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["chestclip", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


CONFIG = PrepareConfig(image_size=32, workers=1)


@pytest.mark.parametrize("name", [REPORTS, PNGS])
def test_truncated_archive_is_an_error(archives, tmp_path, name):
    source = truncated_copy(archives, tmp_path, name)
    with pytest.raises(PartialSourceError, match=rf"{name}: corrupt or truncated archive") as info:
        prepare_dataset(source, tmp_path / "out", CONFIG)
    assert "--allow-partial" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", [REPORTS, PNGS])
def test_allow_partial_keeps_what_was_read_and_says_so(archives, tmp_path, name):
    source = truncated_copy(archives, tmp_path, name)
    whole = prepare_dataset(archives, tmp_path / "whole", CONFIG).counts
    config = CONFIG.model_copy(update={"allow_partial": True})
    counts = prepare_dataset(source, tmp_path / "out", config).counts
    assert 0 < counts["studies"] < whole["studies"]
    (problem,) = counts["partial"]
    assert problem.startswith(f"{source / name}: corrupt or truncated archive")
    saved = json.loads((tmp_path / "out/summary.json").read_text())
    assert saved["partial"] == [problem] and whole["partial"] == []


def test_truncated_image_archive_on_the_command_line(archives, tmp_path, monkeypatch, capsys):
    """Was "aborted", exit 130: tarfile's EOFError looked like Ctrl+D to click."""
    source = truncated_copy(archives, tmp_path, PNGS)
    code, error = run_cli(
        monkeypatch, capsys, "prepare", "--source", str(source), "--out", str(tmp_path / "out")
    )
    assert code == 1 and len(error.strip().splitlines()) == 1
    assert error.startswith(f"chestclip: error: {source / PNGS}: corrupt or truncated archive")


def test_reports_without_images_are_an_error_then_pretrain_says_empty(
    phantom_openi, tmp_path, monkeypatch, capsys
):
    source = tmp_path / "reports-only"
    shutil.copytree(phantom_openi / "ecgen-radiology", source / "ecgen-radiology")
    with pytest.raises(PartialSourceError, match="no study kept: no report has a readable image"):
        prepare_dataset(source, tmp_path / "out", CONFIG)
    empty = prepare_dataset(
        source, tmp_path / "out", CONFIG.model_copy(update={"allow_partial": True})
    )
    assert empty.counts["studies"] == 0 and len(empty.counts["partial"]) == 1
    assert len(PreparedData(tmp_path / "out").studies) == 0
    code, error = run_cli(
        monkeypatch,
        capsys,
        "pretrain",
        "--data",
        str(tmp_path / "out"),
        "--run",
        str(tmp_path / "run"),
        "--config",
        "tiny",
    )
    assert code == 1 and len(error.strip().splitlines()) == 1
    assert error.startswith(f"chestclip: error: {tmp_path / 'out'}: no training study")


def test_fingerprint_follows_sizes_and_times_not_the_folder(archives, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(archives, source)  # copytree keeps modification times
    assert source_fingerprint(source) == source_fingerprint(archives)
    (source / ".NLMCXR_png.tgz.extracted.json").write_text("{}")  # hidden: ours, not data
    assert source_fingerprint(source) == source_fingerprint(archives)
    data = (source / REPORTS).read_bytes()
    (source / REPORTS).write_bytes(data[:-100])
    truncated = source_fingerprint(source)
    assert truncated != source_fingerprint(archives)
    (source / REPORTS).write_bytes(data)  # the whole archive again, with a new time
    assert source_fingerprint(source) not in (truncated, source_fingerprint(archives))
    assert source_fingerprint(source / REPORTS) != source_fingerprint(archives / REPORTS)
    with pytest.raises(ChestClipError, match="no such file"):
        source_fingerprint(tmp_path / "absent")
