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
            "--split-ratios",
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
        (["prepare", "--source", ".", "--out", "x", "--split-ratios", "0.5,0.6,0.1"], "split"),
        (
            ["pretrain", "--data", "/no/such/prepared", "--run", "x", "--config", "tiny"],
            "not a prepared dataset",
        ),
        (
            ["pretrain", "--data", "x", "--run", "y", "--config", "tiny", "--set", "pretrain.lr=0"],
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


# ---- one line instead of a traceback (issue 18) ----------------------------------------------


def assert_one_line(code, captured, *expected):
    assert code == 1, captured.err
    error = captured.err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("chestclip: error: "), error
    for part in expected:
        assert part in error, error


@pytest.mark.parametrize(
    ("value", "problem"),
    [("[1", "not a YAML value"), ("!!python/object/apply:os.system ['echo hi']", "YAML value")],
)
def test_a_broken_override_is_one_line(monkeypatch, capsys, tmp_path, value, problem):
    args = ["pretrain", "--data", str(tmp_path), "--run", str(tmp_path / "run"), "--config", "tiny"]
    code, captured = run_main(monkeypatch, capsys, *args, "--set", f"pretrain.lr={value}")
    assert_one_line(code, captured, "override ", "pretrain.lr=", problem)


def test_unknown_text_fields_are_one_line(monkeypatch, capsys, tmp_path, phantom_kaggle):
    args = ["prepare", "--source", str(phantom_kaggle), "--out", str(tmp_path / "p")]
    code, captured = run_main(monkeypatch, capsys, *args, "--text-fields", "indication,bogus")
    assert_one_line(code, captured, "text_fields.1", "'indication'")
    assert not (tmp_path / "p").exists()


def test_build_text_names_unknown_fields_as_a_user_error():
    from chestclip.data.text import build_text
    from chestclip.errors import ChestClipError

    with pytest.raises(ChestClipError, match=r"unknown text field\(s\) bogus: expected indication"):
        build_text(pd.DataFrame({"indication": ["cough"]}), ("bogus",), "safe")


@pytest.mark.parametrize("problem", ["missing columns", "not UTF-8"])
def test_a_broken_projection_table_is_one_line(
    monkeypatch, capsys, tmp_path, phantom_openi, problem
):
    import shutil

    source = tmp_path / "source"
    shutil.copytree(phantom_openi, source)
    table = source / "nlmcxr_dicom_metadata.csv"
    if problem == "missing columns":
        table.write_text("imageid,Position\nCXR1_1_IM-0001-3001,PA\n")
    else:
        table.write_bytes(table.read_bytes().replace(b"PA", b"P\xe9\xff", 1))
    code, captured = run_main(
        monkeypatch, capsys, "prepare", "--source", str(source), "--out", str(tmp_path / "p")
    )
    assert_one_line(code, captured, f"{table}: unreadable view table")


@pytest.fixture(scope="module")
def small_prepared(phantom_kaggle, tmp_path_factory):
    from chestclip.config import PrepareConfig
    from chestclip.data import prepare_dataset

    out = tmp_path_factory.mktemp("small") / "prepared"
    return prepare_dataset(phantom_kaggle, out, PrepareConfig(image_size=32, workers=1)).out


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("pretrain.accelerator=tpu9", "invalid accelerator name"),
        ("pretrain.strategy=bogus", "invalid strategy name"),
        ("pretrain.devices=99", "99 CPU devices asked for"),
    ],
)
def test_impossible_hardware_is_refused_in_one_line(
    monkeypatch, capsys, tmp_path, small_prepared, setting, problem
):
    """pretrain.devices=99 on a CPU waited for ever for 98 ranks that never joined."""
    args = ["pretrain", "--data", str(small_prepared), "--run", str(tmp_path / "run")]
    args += ["--config", "tiny", "--set", "pretrain.accelerator=cpu", "--set", setting]
    code, captured = run_main(monkeypatch, capsys, *args)
    assert_one_line(code, captured, setting.split("=")[0], problem)


def test_a_truncated_last_checkpoint_is_one_line(monkeypatch, capsys, tmp_path, small_prepared):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints/last.ckpt").write_bytes(b"PK\x03\x04 the first bytes of a zip, then none")
    args = ["pretrain", "--data", str(small_prepared), "--run", str(run), "--config", "tiny"]
    code, captured = run_main(monkeypatch, capsys, *args, "--resume")
    assert_one_line(code, captured, f"{run / 'checkpoints/last.ckpt'}: truncated or corrupt")


def test_predict_on_a_missing_run_says_not_found(monkeypatch, capsys, tmp_path):
    code, captured = run_main(
        monkeypatch, capsys, "predict", "--run", str(tmp_path / "nope"), "x.png"
    )
    assert_one_line(code, captured, f"{tmp_path / 'nope'}: run directory not found")


def test_the_megapixel_default_is_the_librarys():
    from chestclip.data.limits import DEFAULT_MAX_PIXELS

    for command in ("predict", "serve"):
        option = next(p for p in cli.commands[command].params if p.name == "max_megapixels")
        assert option.default * 1e6 == DEFAULT_MAX_PIXELS


NOT_A_RUN = "/no/run: no config.json here or in clip/ (not a saved ChestCLIP or run)"
NOT_PREPARED = "/no/prep: not a prepared dataset (missing studies.csv, images.csv, summary.json)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["probe", "--run", "/no/run", "--data", "/no/prep"], NOT_A_RUN),
        (["evaluate", "--run", "/no/run", "--data", "/no/prep"], NOT_PREPARED),
        (["report", "--run", "/no/run"], "/no/run/eval/metrics.json: missing; run `chestclip eval"),
        (["zeroshot", "--run", "/no/run", "--data", "/no/prep"], NOT_A_RUN),
        (["retrieve", "--run", "/no/run", "--text", "effusion"], NOT_A_RUN),
        (["explain", "--run", "/no/run", "--data", "/no/prep"], NOT_A_RUN),
        (["run", "--config", "tiny", "--source", "/no/src", "--run", "o"], "/no/src: no such file"),
        (
            ["baseline", "image", "--data", "/no/prep", "--run", "o", "--config", "tiny"],
            NOT_PREPARED,
        ),
        (["baseline", "text", "--data", "/no/prep", "--out", "o"], NOT_PREPARED),
    ],
)
def test_every_command_names_a_missing_input_in_one_line(
    monkeypatch, capsys, tmp_path, args, message
):
    monkeypatch.chdir(tmp_path)
    assert_one_line(*run_main(monkeypatch, capsys, *args), message)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["probe", "--run", "r", "--data", "d", "--features", "vision"], "'--features': 'vision'"),
        (["evaluate", "--run", "r", "--data", "d", "--threshold", "median"], "'--threshold'"),
        (["retrieve", "--run", "r"], "give --data to evaluate retrieval, or --image/--text"),
        (
            ["retrieve", "--run", "r", "--text", "effusion", "-k", "0"],
            "'-k': 0 is not in the range",
        ),
        (["explain", "--run", "r"], "give --image FILE, or --data PREPARED for a batch"),
        (["zeroshot", "--run", "r", "--data", "d", "--bootstrap", "-1"], "'--bootstrap'"),
        (["baseline", "vision"], "No such command 'vision'"),
    ],
)
def test_a_bad_option_is_one_error_line(monkeypatch, capsys, tmp_path, args, message):
    """Click's usage errors: the usage, then one ``Error:`` line naming the option."""
    monkeypatch.chdir(tmp_path)
    code, captured = run_main(monkeypatch, capsys, *args)
    errors = [line for line in captured.err.splitlines() if line.startswith("Error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0], captured.err
    assert "Traceback" not in captured.err
