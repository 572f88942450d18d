"""`chestclip demo` end to end at reduced size: every artefact, and printed AUCs = metrics.json."""

import json
import re

import pytest
from click.testing import CliRunner

from chestclip.cli import cli

pytestmark = pytest.mark.slow


def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--studies", "160", "--epochs", "3", "--bootstrap", "50"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    run = out / "run"
    for name in (
        "config.yaml",
        "env.json",
        "clip/model.safetensors",
        "clip/metrics.csv",
        "clip/data.json",
        "heads/multimodal/head.safetensors",
        "heads/image/head.json",
        "heads/multimodal_indication/head.json",
        "baselines/image-finetuned/scores.csv",
        "eval/metrics.json",
        "eval/predictions.csv",
        "plots/roc.png",
        "plots/clip_loss.png",
        "plots/modality_auc.png",
        "plots/reliability.png",
        "plots/confusion.png",
        "plots/zeroshot_auc.png",
        "plots/retrieval_recall.png",
        "explain/gallery.png",
        "explain/roi.csv",
        "explain/faithfulness.json",
        "zeroshot/metrics.json",
        "retrieval/metrics.json",
        "retrieval/index-test/index.json",
        "report.html",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "eval/metrics.json").read_text())
    printed = dict(re.findall(r"^(\S+)\s+(\d\.\d{3}) \(", result.output, flags=re.MULTILINE))
    assert set(printed) == set(metrics["heads"])
    for name, head in metrics["heads"].items():
        assert printed[name] == f"{head['levels']['image']['metrics']['roc_auc']['value']:.3f}"
    assert "report.html" in result.output.splitlines()[-1]
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0 and "--overwrite" in str(again.exception)
