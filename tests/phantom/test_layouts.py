"""The phantom writes the real IU X-Ray file layouts exactly (openi XML/PNG, kaggle CSVs)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pandas as pd
from PIL import Image

from chestclip.phantom import PhantomSummary

IMAGE_ID = re.compile(r"^(\d+)_IM-\d{4}-\d{4}$")
SECTIONS = ["COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION"]


def read_csv(path) -> pd.DataFrame:
    """A CSV as strings, empty cells as empty strings."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_openi_files_follow_the_archive(openi: PhantomSummary) -> None:
    root = openi.out
    xmls = sorted((root / "ecgen-radiology").glob("*.xml"), key=lambda p: int(p.stem))
    assert [p.stem for p in xmls] == [str(uid) for uid in range(1, openi.n_studies + 1)]
    metadata = read_csv(root / "nlmcxr_dicom_metadata.csv")
    assert list(metadata.columns) == ["imageid", "View Position"]
    assert set(metadata["View Position"]) == {"PA", "LL"}
    positions = dict(zip(metadata.imageid, metadata["View Position"], strict=True))
    image_refs = []
    for path in xmls:
        text = path.read_text(encoding="utf-8")
        assert text.startswith('<?xml version="1.0" encoding="utf-8"?>\n<eCitation>')
        root_el = ET.fromstring(text)
        assert root_el.find("uId").get("id") == f"CXR{path.stem}"
        abstract = root_el.find("MedlineCitation/Article/Abstract")
        assert [el.get("Label") for el in abstract.findall("AbstractText")] == SECTIONS
        assert root_el.find("MedlineCitation/Article/ArticleTitle").text
        majors = [el.text for el in root_el.findall("MeSH/major")]
        assert majors and all(majors)
        images = root_el.findall("parentImage")
        assert {el.get("id") for el in images} <= set(positions)
        frontal = [el for el in images if positions[el.get("id")] == "PA"]
        assert len(frontal) == 1 and 1 <= len(images) <= 2
        for figure, el in enumerate(images, 1):
            image_id = el.get("id")
            assert image_id.startswith(f"CXR{path.stem}_IM-")
            assert el.find("figureId").text == f"F{figure}"
            assert el.find("caption").text
            assert el.find("panel/url").text == f"/hadoop/storage/radiology/extract/{image_id}.jpg"
            image_refs.append(image_id)
    assert sorted(image_refs) == sorted(metadata.imageid)
    pngs = sorted(p.stem for p in (root / "NLMCXR_png").glob("*.png"))
    assert pngs == sorted(image_refs)
    assert len(pngs) == openi.n_images


def test_empty_sections_are_empty_elements(openi: PhantomSummary) -> None:
    texts = [p.read_text() for p in (openi.out / "ecgen-radiology").glob("*.xml")]
    empty = [t for t in texts if '<AbstractText Label="COMPARISON"/>' in t]
    assert empty, "some reports have no comparison, as in the archive"
    for text in empty:
        assert '<AbstractText Label="COMPARISON"></AbstractText>' not in text


def test_kaggle_files_follow_the_published_csvs(kaggle: PhantomSummary) -> None:
    root = kaggle.out
    reports = read_csv(root / "indiana_reports.csv")
    assert list(reports.columns) == [
        "uid",
        "MeSH",
        "Problems",
        "image",
        "indication",
        "comparison",
        "findings",
        "impression",
    ]
    assert list(reports.uid) == [str(uid) for uid in range(1, kaggle.n_studies + 1)]
    for mesh, problems in zip(reports.MeSH, reports.Problems, strict=True):
        assert problems.split(";") == [term.split("/")[0] for term in mesh.split(";")]
    projections = read_csv(root / "indiana_projections.csv")
    assert list(projections.columns) == ["uid", "filename", "projection"]
    assert set(projections.projection) == {"Frontal", "Lateral"}
    assert (
        projections.groupby("uid").projection.apply(lambda p: (p == "Frontal").sum()) == 1
    ).all()
    for uid, filename in zip(projections.uid, projections.filename, strict=True):
        assert filename.endswith(".dcm.png")
        match = IMAGE_ID.match(filename.removesuffix(".dcm.png"))
        assert match and match.group(1) == uid
        image = Image.open(root / "images" / "images_normalized" / filename)
        assert image.mode == "L" and image.size == (96, 96)
    assert projections.filename.is_unique
    assert len(projections) == kaggle.n_images


def test_layouts_hold_the_same_studies(openi: PhantomSummary, kaggle: PhantomSummary) -> None:
    reports = read_csv(kaggle.out / "indiana_reports.csv")
    for uid, mesh, findings in zip(reports.uid, reports.MeSH, reports.findings, strict=True):
        root = ET.parse(openi.out / "ecgen-radiology" / f"{uid}.xml").getroot()
        assert ";".join(el.text for el in root.findall("MeSH/major")) == mesh
        label = "MedlineCitation/Article/Abstract/AbstractText[@Label='FINDINGS']"
        assert (root.find(label).text or "") == findings
    projections = read_csv(kaggle.out / "indiana_projections.csv")
    for filename in projections.filename:
        image_id = filename.removesuffix(".dcm.png")
        kaggle_png = kaggle.out / "images" / "images_normalized" / filename
        openi_png = openi.out / "NLMCXR_png" / f"CXR{image_id}.png"
        assert kaggle_png.read_bytes() == openi_png.read_bytes()
    for name in ("phantom_truth.csv", "phantom_studies.csv"):
        assert (openi.out / name).read_bytes() == (kaggle.out / name).read_bytes()


def test_ground_truth_tables(openi: PhantomSummary) -> None:
    truth = read_csv(openi.out / "phantom_truth.csv")
    assert list(truth.columns) == [
        "image_id",
        "uid",
        "finding",
        "side",
        "zone",
        "x0",
        "y0",
        "x1",
        "y1",
    ]
    assert set(truth.finding) <= {"cardiomegaly", "effusion", "opacity", "nodule"}
    assert set(truth.side) <= {"right", "left", "none"}
    assert set(truth.zone) <= {"upper", "middle", "lower", "costophrenic", "cardiac"}
    studies = read_csv(openi.out / "phantom_studies.csv")
    assert list(studies.columns) == [
        "uid",
        "label",
        "findings",
        "frontal_image_id",
        "lateral_image_id",
    ]
    assert set(studies.label) == {"0", "1"}
    assert ((studies.label == "1") == (studies.findings != "")).all()
    assert (studies.lateral_image_id == "").any() and (studies.lateral_image_id != "").any()
    assert set(truth.image_id) <= set(studies.frontal_image_id)
    assert len(studies) == openi.n_studies
    assert (studies.label == "0").sum() == openi.n_normal
    for image_id in studies.frontal_image_id:
        assert IMAGE_ID.match(image_id)
