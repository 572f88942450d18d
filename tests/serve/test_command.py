"""`chestclip serve`: the command's defaults reach the library, and a bad run is one line."""

import sys

import pytest
from click.testing import CliRunner

import chestclip.serve
from chestclip.cli import cli, main


def test_defaults_bind_loopback(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(chestclip.serve, "serve", lambda *args, **kwargs: calls.append(args))
    result = CliRunner().invoke(cli, ["serve", "--run", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path, "127.0.0.1", 8000, 32 * 2**20)]


@pytest.mark.parametrize(
    ("name", "problem"),
    [("missing", "run directory not found"), ("", "no image-reading head in heads/")],
)
def test_a_missing_run_or_one_without_heads_is_a_one_line_error(
    monkeypatch, capsys, tmp_path, name, problem
):
    run = tmp_path / name
    monkeypatch.setattr(sys, "argv", ["chestclip", "serve", "--run", str(run)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    error = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert error.startswith(f"chestclip: error: {run}: {problem}")
    assert len(error.strip().splitlines()) == 1
