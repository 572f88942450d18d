"""zeroshot/retrieve stages on the tiny CLIP trained on phantoms: outputs, queries, drafts."""

import json

import pandas as pd
import pytest

from chestclip.retrieval.stage import draft_reports, query, run_retrieval, run_zero_shot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def retrieval_run(trained_run, prepared_phantoms, tmp_path_factory):
    import shutil

    run = tmp_path_factory.mktemp("retrieval") / "run"
    shutil.copytree(trained_run.run, run)
    return run, run_retrieval(run, prepared_phantoms, "test")


def test_retrieval_outputs_and_chance(retrieval_run):
    run, metrics = retrieval_run
    saved = json.loads((run / "retrieval/metrics.json").read_text())
    assert saved["split"] == "test" and saved == json.loads(json.dumps(metrics))
    assert (run / "retrieval/index-train/index.json").is_file()
    assert (run / "plots/retrieval_recall.png").stat().st_size > 5_000
    for direction in ("image_to_report", "report_to_image"):
        assert metrics[direction]["recall@10"] > metrics[direction]["chance@10"]


def test_queries_and_drafts_come_from_the_right_split(retrieval_run, prepared_phantoms):
    run, _ = retrieval_run
    images = pd.read_csv(prepared_phantoms / "images.csv", dtype={"uid": str})
    test_image = images.query("split == 'test'").iloc[0]
    found = query(run, "test", image=test_image["file"], k=4)
    assert len(found) == 4 and found["similarity"].is_monotonic_decreasing
    train_uids = set(images.query("split == 'train'")["uid"])
    drafts = draft_reports(run, test_image["file"], k=3)
    assert len(drafts) == 3 and set(drafts["uid"]) <= train_uids
    assert len(drafts.drop_duplicates(["findings", "impression"])) == 3
    texts = query(run, "test", text="Moderate right pleural effusion.", k=3)
    assert len(texts) == 3 and set(texts["uid"]) <= set(images.query("split == 'test'")["uid"])


def test_zero_shot_stage_writes_metrics_and_plot(trained_run, prepared_phantoms, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run.run, run)
    result = run_zero_shot(run, prepared_phantoms, n_boot=50)
    assert json.loads((run / "zeroshot/metrics.json").read_text())["split"] == "test"
    assert result["tasks"]["abnormal"]["status"] == "ok"
    assert (run / "plots/zeroshot_auc.png").is_file()


def test_dicom_queries_and_drafts_match_their_png(retrieval_run, xray_files):
    """`retrieve --image` (and `--drafts`) read DICOM as `predict` does."""
    run, _ = retrieval_run
    png = query(run, "test", image=xray_files["png"], k=3)
    dicom = query(run, "test", image=xray_files["mono2"], k=3)
    assert dicom["uid"].tolist() == png["uid"].tolist()
    assert dicom["similarity"].to_numpy() == pytest.approx(png["similarity"].to_numpy(), abs=1e-4)
    drafts = draft_reports(run, xray_files["mono1"], k=2)
    assert drafts["uid"].tolist() == draft_reports(run, xray_files["png"], k=2)["uid"].tolist()
