"""`chestclip run` with multi-label heads on the phantom MIMIC-CXR-JPG, CheXpert (reports from
its CheXpert Plus table) and manifest layouts: per-finding AUCs with CIs printed, saved
(findings.json, the figure) and shown in report.html and by `predict --json`; an image-only
CheXpert stops after prepare with one line. A finding drawn on the image is learnt: test
ROC-AUC > 0.8."""

import json
import re
import shutil
import sys

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from chestclip.cli import cli, main
from chestclip.config import load_run_config
from chestclip.data import PreparedData
from chestclip.evaluation.findings import FINDINGS_PREFIX, evaluate_finding_heads
from chestclip.evaluation.metrics import format_with_ci
from chestclip.evaluation.schema import validate_findings
from chestclip.inference.predict import Prediction
from chestclip.phantom import generate_phantoms
from chestclip.serve import create_app
from chestclip.training.findings_probe import probe_findings
from chestclip.utils.run_layout import HEAD_FILE, RunLayout

pytestmark = pytest.mark.slow

# small and quick: the end-to-end test checks that every stage runs and reports, not accuracy
QUICK = [
    "--set", "pretrain.epochs=1", "--set", "probe.epochs=2", "--set", "probe.batch_size=128",
    "--set", "probe.ablation=[]", "--set", "stages.baseline=false",
    "--set", "stages.explain=false", "--set", "stages.zeroshot=false",
    "--set", "stages.retrieve=false", "--bootstrap", "20",
]  # fmt: skip
DRAWN = {"mimic": "Cardiomegaly", "chexpert": "Cardiomegaly", "manifest": "cardiomegaly"}


@pytest.fixture(scope="module", params=list(DRAWN))
def layout_run(request, tmp_path_factory):
    """(layout, run directory, printed output) of `chestclip run` on 60 phantom studies."""
    root = tmp_path_factory.mktemp(request.param)
    generate_phantoms(root / "source", 60, 64, request.param, seed=4, visibility=3.0)
    paths = ["--source", str(root / "source"), "--run", str(root / "run")]
    result = CliRunner().invoke(cli, ["run", "--config", "tiny", *paths, *QUICK])
    assert result.exit_code == 0, result.output
    return request.param, root / "run", result.output


def test_run_prints_and_saves_per_finding_aucs_with_cis(layout_run):
    layout_name, run, output = layout_run
    layout = RunLayout(run)
    document = json.loads(layout.findings_metrics.read_text())
    assert validate_findings(document) == []
    heads = {FINDINGS_PREFIX + "image", FINDINGS_PREFIX + "multimodal"}
    assert set(document["heads"]) == heads  # with reports: the multimodal one too
    assert "findings (test, per image; thresholds chosen on validation" in output
    for head, result in document["heads"].items():
        findings = result["levels"]["image"]["findings"]
        assert DRAWN[layout_name] in findings
        for name, entry in findings.items():
            auc = format_with_ci(entry["metrics"]["roc_auc"])
            shown = re.compile(rf"{re.escape(head)}\s+{re.escape(name)}\s+{re.escape(auc)}\s")
            assert any(shown.match(line.strip()) for line in output.splitlines()), (head, name)
        assert re.search(rf"{re.escape(head)}\s+macro ROC-AUC .* micro ", output)
    assert layout.plot("findings_auc").is_file() and layout.findings_predictions.is_file()
    page = layout.report.read_text()
    assert "Findings: multi-label heads" in page and DRAWN[layout_name] in page


def test_multilabel_heads_are_saved_with_their_findings_and_fingerprint(layout_run):
    _, run, _ = layout_run
    layout = RunLayout(run)
    assert [d.name for d in layout.finding_head_dirs()] == ["image", "multimodal"]
    assert all(d.parent.name != "findings" for d in layout.head_dirs())  # binary heads apart
    info = json.loads((layout.finding_head("image") / HEAD_FILE).read_text())
    findings = PreparedData(layout.prepared).finding_names
    assert set(info["findings"]) | set(info["skipped_findings"]) == set(findings)
    assert info["fingerprint"]["clip_sha256"] == layout.clip_sha256()


def test_predict_json_gives_every_finding_a_probability_and_decision(layout_run, capsys):
    layout_name, run, _ = layout_run
    if layout_name != "mimic":
        pytest.skip("one layout is enough: predict reads heads, not layouts")
    image = PreparedData(RunLayout(run).prepared).split_images("test").iloc[0]["file"]
    args = ["chestclip", "predict", "--run", str(run), image, "--json", "--allow-ood"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", args)
        main()  # exits only on an error
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    names = json.loads((RunLayout(run).finding_head("image") / HEAD_FILE).read_text())
    findings = result["findings"][FINDINGS_PREFIX + "image"]
    assert list(findings) == names["findings"]
    for found in findings.values():
        assert 0 <= found["probability"] <= 1 and found["decision"] in ("present", "absent")
    assert "findings" not in Prediction("x.png").as_dict()  # a binary-only run's JSON is as before


def test_serve_api_returns_every_finding(layout_run):
    layout_name, run, _ = layout_run
    if layout_name != "mimic":
        pytest.skip("one layout is enough: serve reads heads, not layouts")
    client = TestClient(create_app(run), base_url="http://localhost")
    names = json.loads((RunLayout(run).finding_head("image") / HEAD_FILE).read_text())["findings"]
    assert client.get("/api/model").json()["findings"][FINDINGS_PREFIX + "image"] == names
    image = PreparedData(RunLayout(run).prepared).split_images("test").iloc[0]["file"]
    with open(image, "rb") as handle:
        files = {"file": ("x.jpg", handle.read(), "image/jpeg")}
    response = client.post("/api/predict", files=files, data={"allow_ood": "true"})
    assert response.status_code == 200, response.text
    findings = response.json()["findings"][FINDINGS_PREFIX + "image"]
    assert list(findings) == names
    assert all(f["decision"] in ("present", "absent") for f in findings.values())


def test_image_only_chexpert_stops_after_prepare_with_one_line(tmp_path, monkeypatch, capsys):
    source = tmp_path / "source"
    generate_phantoms(source, 12, 64, "chexpert", seed=4, visibility=3.0)
    for table in source.glob("df_chexpert_plus_*.csv"):
        table.unlink()  # CheXpert without CheXpert Plus: no report text
    out = tmp_path / "run"
    args = ["chestclip", "run", "--config", "tiny", "--source", str(source), "--run", str(out)]
    monkeypatch.setattr(sys, "argv", args + QUICK)
    with pytest.raises(SystemExit) as exit_info:
        main()
    error = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(error) == 1
    assert "CLIP pre-training needs report text" in error[0] and "image-only" in error[0]
    assert json.loads(RunLayout(out).stage_record("prepare").read_text())["status"] == "done"


@pytest.fixture(scope="module")
def learnt_findings(trained_run, prepared_phantoms, tmp_path_factory):
    """findings.json of an image-only multi-label head on the shared tiny CLIP (600 IU-layout
    phantom studies, lesions at visibility 3, MeSH terms mapped to the CheXpert names), in a
    copy of that run so the other tests' runs keep binary heads only."""
    run = tmp_path_factory.mktemp("findings") / "run"
    skip = shutil.ignore_patterns("checkpoints", "logs", "heads", "eval")
    shutil.copytree(trained_run.run, run, ignore=skip)
    heads = probe_findings(run, prepared_phantoms, load_run_config("tiny"), kinds=("image",))
    assert [head.name for head in heads] == ["image"]
    return evaluate_finding_heads(RunLayout(run), PreparedData(prepared_phantoms), n_boot=200)


def test_a_finding_drawn_on_the_image_is_learnt(learnt_findings):
    # per study: lesions are drawn on the frontal film only; a lateral view of the same study
    # carries the label without showing it, and a study averages its views
    study = learnt_findings["heads"][FINDINGS_PREFIX + "image"]["levels"]["study"]["findings"]
    for drawn in ("Cardiomegaly", "Lung Opacity"):
        entry = study[drawn]
        assert entry["status"] == "ok" and entry["n_positive"] >= 10, drawn
        assert entry["metrics"]["roc_auc"]["value"] > 0.8, drawn
        assert entry["metrics"]["roc_auc"]["ci_low"] > 0.5, drawn
