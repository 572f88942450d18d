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


def test_a_run_without_heads_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", ["chestclip", "serve", "--run", str(tmp_path / "missing")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    error = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert error.startswith("chestclip: error:") and "run `chestclip probe` first" in error
    assert len(error.strip().splitlines()) == 1
