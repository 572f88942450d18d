"""Optional extras: a missing one is a one-line error naming the extra, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chestclip.cli import main
from chestclip.utils.extras import EXTRAS, PIP_EXTRA, MissingExtraError, require_extra

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_installed_extra_passes() -> None:
    for extra in EXTRAS:
        require_extra(extra, "the test")  # dev installs every extra


def test_missing_module_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # what find_spec sees for a missing module
    with pytest.raises(
        MissingExtraError, match=r"^logging needs wandb: pip install 'chestclip\[loggers\]'$"
    ):
        require_extra("wandb", "logging")


def test_every_extra_is_declared_and_dev_installs_all() -> None:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert {PIP_EXTRA.get(name, name) for name in EXTRAS} <= set(extras)
    assert "chestclip[all]" in extras["dev"]
    assert extras["all"] == ["chestclip[serve,sweep,onnx,loggers]"]
    core = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    optional = {"optuna", "fastapi", "uvicorn", "onnxruntime", "tensorboard", "wandb", "mlflow"}
    assert not any(dependency.split(">")[0].split("=")[0] in optional for dependency in core)


@pytest.mark.parametrize(
    ("command", "package", "module", "extra"),
    [
        (
            ["sweep", "--config", "sweep-tiny", "--data", "d", "--out", "o"],
            "chestclip.sweep",
            "optuna",
            "sweep",
        ),
        (["serve", "--run", "r"], "chestclip.serve", "uvicorn", "serve"),
    ],
)
def test_cli_without_the_extra_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    package: str,
    module: str,
    extra: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, package, raising=False)  # import it afresh
    monkeypatch.setattr(sys, "argv", ["chestclip", *command])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    expected = f"chestclip {command[0]} needs {module}: pip install 'chestclip[{extra}]'"
    assert capsys.readouterr().err == f"chestclip: error: {expected}\n"


def test_core_works_without_any_extra() -> None:
    """The demo's and `chestclip run`'s modules, and `chestclip --help`, import none of them."""
    hidden = [name for modules in EXTRAS.values() for name in modules]
    code = (
        "import sys\n"
        f"for name in {hidden!r}: sys.modules[name] = None\n"
        "import chestclip.pipeline, chestclip.export, chestclip.inference.predict\n"
        "from chestclip.cli import main\n"
        "sys.argv = ['chestclip', '--help']\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "export" in result.stdout and "push" in result.stdout
