"""The CLI's conventions (issue 17): one meaning per option name, a default in every help line,
--seed wherever something trains, `config show`, -v/-q."""

from __future__ import annotations

import logging

import click
import pytest
import yaml
from click.testing import CliRunner

from chestclip.cli import cli

TRAINING_COMMANDS = (("pretrain",), ("probe",), ("run",), ("baseline", "image"))
RUN_CREATING = (("pretrain",), ("run",), ("baseline", "image"))


def every_command(group: click.Group = cli, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from every_command(command, (*path, name))
        else:
            yield (*path, name), command


def command(path: tuple[str, ...]) -> click.Command:
    found = cli
    for name in path:
        found = found.commands[name]
    return found


def options(found: click.Command) -> dict[str, click.Option]:
    return {o: p for p in found.params if isinstance(p, click.Option) for o in p.opts}


def test_every_option_has_help_and_says_its_default():
    for path, found in every_command():
        root = click.Context(cli, info_name="chestclip", **cli.context_settings)
        context = click.Context(found, info_name=path[-1], parent=root)
        for param in found.params:
            if not isinstance(param, click.Option) or param.hidden:
                continue
            where = f"{' '.join(path)} {param.opts[0]}"
            assert param.help, f"{where}: no help text"
            _, text = param.get_help_record(context)
            # a default shown by click, or stated in the help ("[paper]"), or none to state
            stated = "[default:" in text or "[" in param.help
            default = param.get_default(context, call=False)
            absent = default is None or type(default).__name__ == "Sentinel"  # click's UNSET
            assert stated or absent or param.required or param.is_flag or param.multiple, where


@pytest.mark.parametrize("path", RUN_CREATING)
def test_the_run_directory_is_always_run(path):
    found = options(command(path))
    assert found["--run"].name == "run_dir"
    assert "--out" not in found


def test_split_names_the_split_to_read_everywhere():
    for path, found in every_command():
        split = options(found).get("--split")
        if split is not None:
            assert split.default in ("val", "test"), path
    prepare = options(command(("prepare",)))
    assert "--split-ratios" in prepare and "--official-split" in prepare


@pytest.mark.parametrize("path", TRAINING_COMMANDS)
def test_every_training_command_takes_a_seed(path, monkeypatch, tmp_path):
    assert "--seed" in options(command(path))


def test_seed_reaches_the_config(monkeypatch, tmp_path):
    """`pretrain --seed 7` trains with config seed 7 (what `--set seed=7` does)."""
    from chestclip.training import pretrain as pretrain_module

    seen = {}

    def fake_pretrain(data_dir, run_dir, config, resume=False):
        seen["seed"] = config.seed
        raise click.ClickException("stop")

    monkeypatch.setattr(pretrain_module, "pretrain", fake_pretrain)
    args = ["pretrain", "--data", str(tmp_path), "--run", str(tmp_path / "r"), "--config", "tiny"]
    CliRunner().invoke(cli, [*args, "--seed", "7"])
    assert seen == {"seed": 7}


def test_config_show_prints_the_resolved_config_and_its_keys():
    runner = CliRunner()
    shown = runner.invoke(cli, ["config", "show", "--config", "tiny", "--set", "seed=5"])
    assert shown.exit_code == 0, shown.output
    config = yaml.safe_load(shown.output)
    assert config["seed"] == 5 and config["prepare"]["image_size"] == 64
    keys = runner.invoke(cli, ["config", "show", "--config", "tiny", "--keys"])
    lines = keys.output.splitlines()
    assert "prepare.image_size (int) = 64" in lines
    assert any(line.startswith("pretrain.lr (float) = ") for line in lines)
    assert all(" = " in line for line in lines)
    bad = runner.invoke(cli, ["config", "show", "--set", "pretrain.nope=1"])
    assert bad.exit_code != 0


@pytest.mark.parametrize(
    ("flags", "level"),
    [((), logging.WARNING), (("-v",), logging.INFO), (("-vv",), logging.DEBUG), (("-q",), 40)],
)
def test_verbosity_sets_the_log_level(flags, level, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    result = CliRunner().invoke(cli, [*flags, "config", "show", "--config", "tiny"])
    assert result.exit_code == 0, result.output
    assert logging.getLogger("chestclip").level == level
    import os

    assert (os.environ.get("TQDM_DISABLE") == "1") == (flags == ("-q",))
