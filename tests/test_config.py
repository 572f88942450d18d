from pathlib import Path

import pytest

from chestclip.config import (
    ConfigError,
    RunConfig,
    load_run_config,
    save_run_config,
    set_dotted,
)

# run configs; prompts.yaml (zero-shot prompt sets) is validated by tests/retrieval, the sweep
# files (sweep-*.yaml) by tests/sweep
CONFIGS = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")
    if p.stem != "prompts" and not p.stem.startswith("sweep-")
)


def test_configs_are_shipped():
    assert {p.stem for p in CONFIGS} >= {"paper", "tiny"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_validates_and_round_trips(path, tmp_path):
    config = load_run_config(path)
    assert load_run_config(path.stem) == config  # packaged name resolves to the same file
    save_run_config(config, tmp_path / "resolved.yaml")
    assert load_run_config(tmp_path / "resolved.yaml") == config


def test_paper_recipe():
    config = load_run_config("paper")
    assert (config.model.image_encoder, config.model.text_encoder) == (
        "google/vit-base-patch16-224",
        "bert-base-uncased",
    )
    assert (config.model.embed_dim, config.model.temperature) == (512, 0.1)
    p = config.pretrain
    assert (p.optimizer, p.lr, p.batch_size, p.epochs, p.scheduler) == (
        "adamw",
        1e-5,
        32,
        30,
        "plateau",
    )
    q = config.probe
    assert (q.hidden_sizes, q.optimizer, q.lr, q.batch_size, q.epochs) == (
        (512, 512),
        "adamw",
        1e-5,
        32,
        25,
    )
    assert config.prepare.split == (0.70, 0.15, 0.15)
    assert RunConfig().model == config.model  # the class defaults are the paper's model


def test_overrides_and_errors():
    config = load_run_config("tiny", ["pretrain.lr=3e-4", "prepare.text_fields=indication"])
    assert config.pretrain.lr == 3e-4 and config.prepare.text_fields == ("indication",)
    with pytest.raises(ConfigError, match=r"pretrain\.lr: Input should be greater than 0"):
        load_run_config("tiny", ["pretrain.lr=-1"])
    with pytest.raises(ConfigError, match=r"pretrain\.lrr: Extra inputs"):
        load_run_config("tiny", ["pretrain.lrr=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_run_config("tiny", ["pretrain.lr"])
    with pytest.raises(ConfigError, match="no packaged config named 'nope'"):
        load_run_config("nope")


def test_broken_yaml_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pretrain: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read YAML") as err:
        load_run_config(bad)
    assert "\n" not in str(err.value)


def test_set_dotted_returns_a_copy():
    data = {"pretrain": {"augment": {"enabled": True}}}
    changed = set_dotted(data, "pretrain.augment.enabled", False)
    assert changed["pretrain"]["augment"]["enabled"] is False
    assert data["pretrain"]["augment"]["enabled"] is True  # the input is left as it was
    assert set_dotted({}, "probe.lr", 0.1) == {"probe": {"lr": 0.1}}
    with pytest.raises(ConfigError, match="'seed' is not a section"):
        set_dotted({"seed": 0}, "seed.value", 1)


def test_text_field_choices_are_the_report_sections():
    from typing import get_args

    from chestclip.config import TextField
    from chestclip.data.records import SECTIONS

    assert get_args(TextField) == SECTIONS
