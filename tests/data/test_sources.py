"""Parsing of both layouts on small hand-written files, including malformed input."""

import pytest

from chestclip.data.labels import UnlabelledReport, label_from_terms
from chestclip.data.openi import parse_report_xml
from chestclip.data.sources import SourceError, detect_layout, read_source

XML = """<?xml version="1.0" encoding="utf-8"?>
<eCitation><uId id="CXR{uid}"/>
<MedlineCitation><Article><Abstract>
<AbstractText Label="COMPARISON">None.</AbstractText>
<AbstractText Label="INDICATION">Chest pain</AbstractText>
<AbstractText Label="FINDINGS">{findings}</AbstractText>
<AbstractText Label="IMPRESSION">Impression text.</AbstractText>
</Abstract></Article></MedlineCitation>
<MeSH>{mesh}</MeSH>{images}
</eCitation>"""


def _xml(uid, mesh=("normal",), images=("CXR{uid}_IM-0001-1001",), findings="Clear lungs."):
    majors = "".join(f"<major>{m}</major>" for m in mesh)
    refs = "".join(
        f'<parentImage id="{i.format(uid=uid)}"><caption>PA and lateral</caption></parentImage>'
        for i in images
    )
    return XML.format(uid=uid, mesh=majors, images=refs, findings=findings)


@pytest.mark.parametrize(
    ("terms", "label"),
    [
        (["normal"], 0),
        (["Normal", "NORMAL"], 0),
        (["normal", "Cardiomegaly/mild"], 1),
        (["Opacity"], 1),
    ],
)
def test_label_from_terms(terms, label):
    assert label_from_terms(terms) == label


def test_label_needs_terms():
    with pytest.raises(ValueError, match="no MeSH"):
        label_from_terms(["", " "])


def test_parse_report_xml():
    report, images = parse_report_xml(
        _xml(7, mesh=("Cardiomegaly/mild", "Opacity/lung/base/left")).encode()
    )
    assert report["uid"] == "7" and report["label"] == 1
    assert report["findings"] == "Clear lungs." and report["comparison"] == "None."
    assert report["mesh"] == "Cardiomegaly/mild;Opacity/lung/base/left"
    assert report["problems"] == "Cardiomegaly;Opacity"
    assert images == ["CXR7_IM-0001-1001"]


def test_a_caption_does_not_decide_the_view(tmp_path):
    """Captions name the examination: "Chest XXXX and lateral" is on frontal films too."""
    reports = tmp_path / "ecgen-radiology"
    reports.mkdir()
    xml = _xml(1).replace("PA and lateral", "Chest XXXX and lateral")
    (reports / "1.xml").write_text(xml)
    records = read_source(tmp_path, with_images=False)
    assert list(records.images["projection"]) == ["unknown"]
    assert list(records.images["projection_source"]) == ["none"]


def test_a_report_never_indexed_has_no_label():
    """MeSH "No Indexing" says the report was not indexed, not that it is abnormal."""
    with pytest.raises(UnlabelledReport, match="not indexed"):
        label_from_terms(["No Indexing"])
    with pytest.raises(UnlabelledReport, match="not indexed"):
        parse_report_xml(_xml(5, mesh=("No Indexing",)).encode())


def test_not_indexed_reports_are_excluded_and_counted_in_both_layouts(tmp_path):
    openi = tmp_path / "openi" / "ecgen-radiology"
    openi.mkdir(parents=True)
    (openi / "1.xml").write_text(_xml(1))
    (openi / "2.xml").write_text(_xml(2, mesh=("No Indexing",)))
    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    (kaggle / "indiana_reports.csv").write_text(
        "uid,MeSH,Problems,image,indication,comparison,findings,impression\n"
        "1,normal,normal,x,Cough,None.,Clear.,Normal.\n"
        "2,No Indexing,No Indexing,x,Dyspnea,None.,Clear.,No active disease.\n"
    )
    for source in (tmp_path / "openi", kaggle):
        records = read_source(source, with_images=False)
        assert list(records.reports["uid"]) == ["1"]
        (skipped,) = records.skipped
        assert (skipped.kind, skipped.id) == ("report", "2")
        assert skipped.reason.startswith("not indexed:")


def test_openi_directory_with_malformed_reports(tmp_path):
    reports = tmp_path / "ecgen-radiology"
    reports.mkdir()
    (reports / "1.xml").write_text(_xml(1))
    (reports / "2.xml").write_text(_xml(2, mesh=()))
    (reports / "3.xml").write_text(_xml(3)[:200])
    (reports / "4.xml").write_text(_xml(4, images=()))
    records = read_source(tmp_path, with_images=False)
    assert records.layout == "openi"
    assert list(records.reports["uid"]) == ["1", "4"]
    reasons = {s.id: s.reason for s in records.skipped}
    assert reasons["2"] == "no MeSH/Problems terms"
    assert reasons["3"].startswith("malformed XML")
    # the unlabelled report's image is listed, so that prepare counts it as skipped
    assert list(records.images["image_id"]) == ["1_IM-0001-1001", "2_IM-0001-1001"]


def test_kaggle_malformed_rows_are_skipped(tmp_path):
    (tmp_path / "indiana_reports.csv").write_text(
        "uid,MeSH,Problems,image,indication,comparison,findings,impression\n"
        "1,normal,normal,x,Cough,None.,Clear.,Normal.\n"
        "abc,normal,normal,x,,,,\n"
        "3,Opacity/lung,,x,,,,\n"
        '4,Opacity/lung,Opacity,x,"Fever, cough",,Opacity.,Pneumonia.\n'
    )
    (tmp_path / "indiana_projections.csv").write_text(
        "uid,filename,projection\n1,1_IM-0001-4001.dcm.png,Frontal\n4,4_IM-0002-1001.dcm.png,Lateral\n"
    )
    records = read_source(tmp_path, with_images=False)
    assert records.layout == "kaggle"
    assert list(records.reports["uid"]) == ["1", "4"]
    assert list(records.reports["label"]) == [0, 1]
    assert records.reports.iloc[1]["indication"] == "Fever, cough"
    assert {s.id for s in records.skipped} == {"abc", "3"}
    assert list(records.images["image_id"]) == ["1_IM-0001-4001", "4_IM-0002-1001"]
    assert list(records.images["projection"]) == ["Frontal", "Lateral"]


def test_kaggle_missing_column_is_one_clear_error(tmp_path):
    (tmp_path / "indiana_reports.csv").write_text("uid,findings\n1,Clear.\n")
    with pytest.raises(SourceError, match=r"indiana_reports\.csv: missing column"):
        read_source(tmp_path)


def test_not_a_known_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match=r"not a known layout: expected an OpenI .*manifest CSV"):
        detect_layout(tmp_path)
    with pytest.raises(SourceError, match="no such file"):
        detect_layout(tmp_path / "absent")


def test_truncated_report_archive(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "NLMCXR_reports.tgz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for uid in range(1, 40):
            data = _xml(uid, findings=f"Finding number {uid} " * 50).encode()
            info = tarfile.TarInfo(f"ecgen-radiology/{uid}.xml")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    records = read_source(archive, with_images=False)
    assert 0 < len(records.reports) < 39
    assert any("truncated" in s.reason for s in records.skipped)
