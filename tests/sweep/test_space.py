"""Sweep files: the shipped ones validate, bad ones fail in one line naming the file, and the
space turns into Optuna parameters and back into run configs."""

from pathlib import Path

import optuna
import pytest
import yaml

from chestclip.config import ConfigError, PrepareConfig, load_run_config
from chestclip.sweep import Range, load_sweep
from chestclip.sweep.space import suggest

SWEEPS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("sweep-*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_every_shipped_sweep_validates(path):
    sweep = load_sweep(path)
    assert load_sweep(path.stem).spec == sweep.spec  # the packaged name resolves to the file
    assert sweep.spec.budget == len(sweep.spec.grid())  # shipped sweeps are grids


def test_paper_grid():
    sweep = load_sweep("sweep-paper")
    space = sweep.spec.space
    assert space["pretrain.batch_size"] == (32, 64)
    assert space["pretrain.lr"] == (1e-4, 5e-5, 1e-5)
    assert space["pretrain.optimizer"] == ("adamw", "adam")
    assert space["pretrain.scheduler"] == ("plateau", "step")
    assert 0.1 in space["model.temperature"]
    assert sweep.spec.budget == 2 * 3 * 2 * 2 * 3
    assert (sweep.spec.objective, sweep.spec.direction) == ("probe_val_auc_multimodal", "maximize")
    assert sweep.base == load_run_config("paper")  # everything not searched is the paper's recipe


def write(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "my-sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "tiny", **fields}))
    return path


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"space": {"pretrain.lrr": [1]}}, r"pretrain\.lrr=1: pretrain\.lrr: Extra inputs"),
        ({"space": {"pretrain.optimizer": ["sgd"]}}, r"pretrain\.optimizer: Input should be"),
        ({"space": {"pretrain.lr": 0.1}}, r"expected a list of values or \{low, high, log\}"),
        ({"space": {"pretrain.lr": []}}, r"space\.pretrain\.lr\.choices: .*at least 1 item"),
        ({"space": {}}, r"space: .*at least 1 item"),
        ({"space": {"pretrain.lr": {"low": 1, "high": 2}}}, "grid search needs a list"),
        ({"search": "random", "space": {"pretrain.lr": [1e-3]}}, "need a budget: trials"),
        ({"trials": 3, "space": {"pretrain.lr": [1e-3]}}, "runs every combination"),
        (
            {"search": "tpe", "trials": 3, "space": {"pretrain.lr": {"low": 1e-2, "high": 1e-4}}},
            "low must be below high",
        ),
        (
            {
                "search": "tpe",
                "trials": 3,
                "space": {"pretrain.lr": {"low": 0, "high": 1e-3, "log": True}},
            },
            "a log range needs low > 0",
        ),
        ({"space": {"prepare.image_size": [64, 128]}}, "uses the one prepared dataset"),
        ({"fixed": {"prepare.clean": "paper"}, "space": {"seed": [0]}}, "one prepared dataset"),
        ({"space": {"seed": [1, 1]}}, r"space\.seed: repeated value"),
        (
            {"metric": "clip_val_loss", "space": {"pretrain.batch_size": [32, 64]}},
            "not comparable across pretrain.batch_size",
        ),
        ({"head": "vision", "space": {"seed": [0]}}, r"head: Input should be 'multimodal'"),
        ({"serach": "grid", "space": {"seed": [0]}}, "serach: Extra inputs"),
        ({"base": "nope", "space": {"seed": [0]}}, "base: no packaged config named 'nope'"),
        ({"fixed": {"pretrain.epochs": 0}, "space": {"seed": [0]}}, r"fixed: pretrain\.epochs"),
        ({"fixed": {"seed.value": 1}, "space": {"seed": [0]}}, "fixed: 'seed' is not a section"),
    ],
)
def test_bad_sweep_file_is_one_line_naming_it(tmp_path, fields, message):
    path = write(tmp_path, **fields)
    with pytest.raises(ConfigError, match=message) as err:
        load_sweep(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_unreadable_sweep_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("space: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read YAML"):
        load_sweep(path)


def test_base_beside_the_sweep_file_and_fixed_values(tmp_path):
    (tmp_path / "mine.yaml").write_text("pretrain:\n  lr: 0.002\n")
    path = write(
        tmp_path, base="mine.yaml", fixed={"pretrain.epochs": 2}, space={"probe.lr": [1e-3, 1e-2]}
    )
    sweep = load_sweep(path)
    assert (sweep.base.pretrain.lr, sweep.base.pretrain.epochs) == (0.002, 2)
    assert sweep.spec.grid() == [{"probe.lr": 1e-3}, {"probe.lr": 1e-2}]


def test_grid_enumerates_every_combination(tmp_path):
    space = {"pretrain.lr": [1e-3, 3e-3], "pretrain.optimizer": ["adamw", "adam"], "seed": [0, 1]}
    spec = load_sweep(write(tmp_path, space=space)).spec
    grid = spec.grid()
    assert spec.budget == len(grid) == 8
    assert len({tuple(point.values()) for point in grid}) == 8
    assert grid[0] == {"pretrain.lr": 1e-3, "pretrain.optimizer": "adamw", "seed": 0}


def test_suggested_values_become_trial_configs(tmp_path):
    space = {
        "pretrain.lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "pretrain.batch_size": {"low": 16, "high": 64},
        "probe.hidden_sizes": [[64], [32, 32]],  # list choices: Optuna keeps their JSON text
    }
    sweep = load_sweep(write(tmp_path, search="random", trials=5, seed=3, space=space))
    assert isinstance(sweep.spec.space["pretrain.lr"], Range)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    prepare = PrepareConfig(image_size=32)
    for _ in range(5):
        trial = study.ask()
        params = suggest(trial, sweep.spec.space)
        assert 1e-4 <= params["pretrain.lr"] <= 1e-2
        assert isinstance(params["pretrain.batch_size"], int)
        assert 16 <= params["pretrain.batch_size"] <= 64
        assert params["probe.hidden_sizes"] in ([64], [32, 32])
        assert trial.params["probe.hidden_sizes"] in ("[64]", "[32, 32]")
        config = sweep.config(params, prepare)
        assert config.pretrain.lr == params["pretrain.lr"]
        assert config.probe.hidden_sizes == tuple(params["probe.hidden_sizes"])
        assert config.prepare == prepare  # the dataset's preparation, not the base config's
        assert config.pretrain.epochs == sweep.base.pretrain.epochs
