"""`chestclip phantom --reports`: phantom images for the real reports, as the real download."""

import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chestclip.config import PrepareConfig
from chestclip.data import prepare_dataset
from chestclip.data.openi import parse_report_xml
from chestclip.errors import ChestClipError
from chestclip.phantom.mesh import findings_from_mesh
from chestclip.phantom.real_reports import VIEWS_FILE, check_inferred_views, generate_from_reports


def _kinds(terms):
    findings, unmapped = findings_from_mesh(terms, np.random.default_rng(0))
    return sorted((f.kind, f.side, f.zone, f.severity) for f in findings), unmapped


def test_mesh_terms_become_findings():
    assert _kinds(["normal"]) == ([], [])
    assert _kinds(["Opacity/lung/base/left/mild"]) == ([("opacity", "left", "lower", "")], [])
    assert _kinds(["Pleural Effusion/bilateral/small"])[0] == [
        ("effusion", "left", "costophrenic", "small"),
        ("effusion", "right", "costophrenic", "small"),
    ]
    assert _kinds(["Cardiomegaly/severe", "Cardiomegaly/mild"])[0] == [
        ("cardiomegaly", "none", "cardiac", "moderate")  # one heart
    ]
    assert _kinds(["Airspace Disease/lung/middle lobe/right"])[0] == [
        ("opacity", "right", "middle", "")
    ]
    assert _kinds(["Nodule/lung/lingula"])[0] == [("nodule", "left", "lower", "")]
    mass, _ = findings_from_mesh(["Mass/lung/upper lobe/right"], np.random.default_rng(0))
    assert mass[0].size_cm == 3.0 and mass[0].zone == "upper"
    assert _kinds(["Calcified Granuloma/lung/upper lobe/right", "Lung/hypoinflation"]) == (
        [],
        ["Calcified Granuloma", "Lung"],
    )


def _members(archive) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


@pytest.mark.real_data
def test_the_fixture_is_the_download(real_reports_fixture, real_iu):
    files = {p.name for p in real_reports_fixture.iterdir() if not p.name.startswith("phantom_")}
    assert files == {"NLMCXR_reports.tgz", "NLMCXR_png.tgz", "masks"}  # no view table
    reports = _members(real_reports_fixture / "NLMCXR_reports.tgz")
    real = _members(real_iu / "openi/NLMCXR_reports.tgz")
    assert len(reports) == 200 and all(real[name] == data for name, data in reports.items())
    referenced = (parse_report_xml(data, labelled=False)[1] for data in reports.values())
    expected = {f"{i}.png" for ids in referenced for i in ids}
    pngs = _members(real_reports_fixture / "NLMCXR_png.tgz")
    assert set(pngs) == expected  # the real names, at the top of the archive
    views = pd.read_csv(real_reports_fixture / VIEWS_FILE, dtype=str)
    assert len(views) == len(pngs) and set(views["projection"]) == {"Frontal", "Lateral"}
    truth = pd.read_csv(real_reports_fixture / "phantom_truth.csv", dtype=str)
    assert set(truth["image_id"]) <= set(views.loc[views["projection"] == "Frontal", "image_id"])


@pytest.mark.real_data
def test_prepare_infers_the_views_of_the_fixture(real_reports_fixture, tmp_path):
    summary = prepare_dataset(real_reports_fixture, tmp_path / "p", PrepareConfig(image_size=64))
    images = pd.read_csv(tmp_path / "p/images.csv", dtype=str)
    truth = pd.read_csv(real_reports_fixture / VIEWS_FILE, dtype=str).set_index("image_id")
    accuracy = (images["projection"] == images["image_id"].map(truth["projection"])).mean()
    print(f"inferred views on the real-reports fixture: {accuracy:.4f} of {len(images)} images")
    assert accuracy >= 0.97
    assert set(images["projection_source"]) == {"inferred"}
    counts = summary.counts
    skipped = counts["skipped_by_reason"]  # never-indexed reports have no label: skipped
    unlabelled = skipped.get("not indexed", 0)
    assert counts["reports_parsed"] + unlabelled == 200
    assert counts["images"] + skipped.get("report skipped, not indexed", 0) == len(truth)
    assert skipped.get("no images", 0) == 200 - unlabelled - counts["reports_with_images"]


@pytest.mark.slow
@pytest.mark.real_data
def test_every_real_report_keeps_the_real_counts(real_iu, tmp_path):
    """All 3,955 reports at 32 px (about 30 s of CPU): the real counts, views inferred."""
    out = tmp_path / "iu-xray"
    projections = real_iu / "kaggle/indiana_projections.csv"
    made = generate_from_reports(
        real_iu / "openi/NLMCXR_reports.tgz", out, image_size=32, projections=projections
    )
    assert (out / "NLMCXR_reports.tgz").read_bytes() == (
        real_iu / "openi/NLMCXR_reports.tgz"
    ).read_bytes()
    summary = prepare_dataset(out, tmp_path / "p", PrepareConfig(image_size=32, workers=2))
    counts = summary.counts
    # 95 reports never indexed (no label) and their 172 images skipped, as in the real download
    assert (counts["reports_parsed"], counts["reports_with_images"]) == (3860, 3759)
    assert (counts["normal"], counts["diseased"], counts["images"]) == (1379, 2380, 7298)
    assert made.n_images == 7470 and made.n_frontal == 3818  # the Kaggle table's views
    images = pd.read_csv(tmp_path / "p/images.csv", dtype=str)
    truth = pd.read_csv(out / VIEWS_FILE, dtype=str).set_index("image_id")
    accuracy = (images["projection"] == images["image_id"].map(truth["projection"])).mean()
    print(f"inferred views, every real report: {accuracy:.4f} of {len(images)} images")
    assert accuracy >= 0.97


def small_reports_archive(folder: Path) -> Path:
    """A 3-report NLMCXR_reports.tgz: a two-image cardiomegaly study, a normal report without
    images, a one-image study whose only term draws nothing."""
    xml = "<eCitation><uId id='CXR{uid}'/><MeSH><major>{term}</major></MeSH>{images}</eCitation>"
    image = "<parentImage id='CXR{uid}_IM-0001-{n}001'/>"
    reports = {
        1: xml.format(uid=1, term="Cardiomegaly/mild", images=image.format(uid=1, n=1)
                      + image.format(uid=1, n=2)),
        2: xml.format(uid=2, term="normal", images=""),
        3: xml.format(uid=3, term="Calcified Granuloma", images=image.format(uid=3, n=1)),
    }  # fmt: skip
    archive = folder / "NLMCXR_reports.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for uid, text in reports.items():
            info = tarfile.TarInfo(f"ecgen-radiology/{uid}.xml")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return archive


def test_cli_phantom_reports_on_a_small_archive(tmp_path):
    from click.testing import CliRunner

    from chestclip.cli import cli

    archive = small_reports_archive(tmp_path)
    out = tmp_path / "fixture"
    args = ["phantom", "--reports", str(archive), "--out", str(out), "--image-size", "64"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "wrote 3 images (2 frontal) for 3 real reports, lesions drawn for 1" in result.output
    assert "Calcified Granuloma 1" in result.output
    assert sorted(_members(out / "NLMCXR_png.tgz")) == [
        "CXR1_IM-0001-1001.png", "CXR1_IM-0001-2001.png", "CXR3_IM-0001-1001.png",
    ]  # fmt: skip
    views = pd.read_csv(out / VIEWS_FILE, dtype=str)
    assert list(views["projection"]) == ["Frontal", "Lateral", "Frontal"]  # first is frontal
    again = CliRunner().invoke(cli, [*args, "--layout", "kaggle"])
    assert again.exit_code != 0 and "--reports writes the OpenI layout" in again.output


def test_inferred_views_are_checked_against_the_phantom_truth(tmp_path):
    from click.testing import CliRunner

    from chestclip.cli import cli

    fixture = generate_from_reports(small_reports_archive(tmp_path), tmp_path / "f", image_size=64)
    prepared = tmp_path / "prepared"
    args = ["prepare", "--source", str(fixture.out), "--out", str(prepared), "--image-size", "64"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    truth_path = fixture.out / VIEWS_FILE
    assert "views: 2 frontal, 1 lateral, 0 unknown (from 3 inferred)" in result.output
    assert f"views inferred: 3; accuracy against {truth_path}: 100.0% (3 of 3)" in result.output
    # a wrong inference is counted: the truth says otherwise for one image; one is not listed
    truth = pd.read_csv(truth_path, dtype=str)
    flipped = {"Frontal": "Lateral", "Lateral": "Frontal"}
    truth.loc[0, "projection"] = flipped[truth.loc[0, "projection"]]
    truth.iloc[:2].to_csv(truth_path, index=False)
    check = check_inferred_views(prepared)
    assert (check.inferred, check.checked, check.correct) == (3, 2, 1)
    assert check.describe().endswith(": 50.0% (1 of 2)")
    truth_path.write_text("image_id,view\n1_IM-0001-1001,Frontal\n")
    with pytest.raises(ChestClipError, match=f"{truth_path}: not a phantom view table"):
        check_inferred_views(prepared)
    truth_path.unlink()  # not a phantom fixture: nothing to check against
    assert check_inferred_views(prepared) is None
