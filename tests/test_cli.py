"""The command line: real commands end to end, and one-line errors instead of tracebacks."""

import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from chestclip.cli import cli, main


def run_main(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["chestclip", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr()


def test_phantom_then_prepare(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "phantom",
            "--out",
            str(tmp_path / "ph"),
            "--studies",
            "12",
            "--image-size",
            "64",
            "--layout",
            "kaggle",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 12 studies" in result.output
    result = runner.invoke(
        cli,
        [
            "prepare",
            "--source",
            str(tmp_path / "ph"),
            "--out",
            str(tmp_path / "p"),
            "--image-size",
            "32",
            "--clean",
            "paper",
            "--split",
            "0.5,0.25,0.25",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "kaggle source: 12 reports parsed" in result.output
    studies = pd.read_csv(tmp_path / "p/studies.csv")
    assert studies["split"].value_counts().to_dict() == {"train": 6, "test": 3, "val": 3}
    assert not studies["text"].str.contains(r"\bno\b").any()  # paper cleaning drops negations


def test_prepare_config_file_and_flags(tmp_path, phantom_openi):
    config = tmp_path / "c.yaml"
    config.write_text("prepare:\n  image_size: 40\n  views: frontal\n")
    result = CliRunner().invoke(
        cli,
        [
            "prepare",
            "--source",
            str(phantom_openi),
            "--out",
            str(tmp_path / "p"),
            "--config",
            str(config),
            "--image-size",
            "24",
        ],
    )
    assert result.exit_code == 0, result.output
    images = pd.read_csv(tmp_path / "p/images.csv")
    assert set(images["projection"]) == {"Frontal"}  # from the file
    import numpy as np

    assert np.load(tmp_path / "p/images.npy").shape[1] == 24  # the flag wins over the file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["prepare", "--source", "/no/such/dir", "--out", "x"],
            "/no/such/dir: no such file or directory",
        ),
        (["prepare", "--source", ".", "--out", "x", "--split", "0.5,0.6,0.1"], "split"),
        (
            ["pretrain", "--data", "/no/such/prepared", "--out", "x", "--config", "tiny"],
            "not a prepared dataset",
        ),
        (
            ["pretrain", "--data", "x", "--out", "y", "--config", "tiny", "--set", "pretrain.lr=0"],
            "pretrain.lr",
        ),
    ],
)
def test_errors_are_one_line(monkeypatch, capsys, args, message):
    code, captured = run_main(monkeypatch, capsys, *args)
    assert code == 1
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err


def test_prepare_source_that_is_not_iu(monkeypatch, capsys, tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    code, captured = run_main(
        monkeypatch, capsys, "prepare", "--source", str(tmp_path), "--out", str(tmp_path / "o")
    )
    assert code == 1
    assert "not a known layout: expected an OpenI download" in captured.err
