"""Report text and MeSH terms agree with the drawn findings, in the archive's style."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from chestclip.phantom import PhantomSummary
from chestclip.phantom.reports import problems
from chestclip.phantom.study import plan_study

KEYWORDS = {
    "cardiomegaly": ("cardiomegaly", "enlarged"),
    "effusion": ("effusion",),
    "opacity": ("opacity", "consolidation"),
    "nodule": ("nodule", "nodular"),
}
MESH = {
    "cardiomegaly": r"Cardiomegaly(/(mild|moderate))?",
    "effusion": r"Pleural Effusion/(right|left)(/(small|moderate))?",
    "opacity": r"(Opacity|Consolidation)/lung/(upper|middle|lower) lobe/(right|left)",
    "nodule": r"Nodule/lung/(upper|middle|lower) lobe/(right|left)",
}
PLANS = [plan_study(11, uid) for uid in range(1, 401)]


def test_reports_name_each_drawn_finding_and_its_side(kaggle: PhantomSummary) -> None:
    reports = pd.read_csv(kaggle.out / "indiana_reports.csv", dtype=str, keep_default_na=False)
    text = dict(
        zip(reports.uid.astype(int), reports.findings + " " + reports.impression, strict=True)
    )
    truth = pd.read_csv(kaggle.out / "phantom_truth.csv")
    assert len(truth) > 0
    for row in truth.itertuples():
        report = text[row.uid].lower()
        assert any(word in report for word in KEYWORDS[row.finding]), (row.finding, report)
        if row.side != "none":
            assert row.side in report, (row.side, report)
            assert f"{row.side} {row.zone} lobe" in report or row.zone == "costophrenic"


def test_normal_studies_are_mesh_normal(kaggle: PhantomSummary) -> None:
    reports = pd.read_csv(kaggle.out / "indiana_reports.csv", dtype=str, keep_default_na=False)
    studies = pd.read_csv(kaggle.out / "phantom_studies.csv", dtype=str, keep_default_na=False)
    normal = reports.MeSH == "normal"
    assert (normal == (studies.label == "0")).all()
    assert (reports.Problems[normal] == "normal").all()
    assert not reports.Problems[~normal].str.contains("normal").any()


def test_mesh_terms_follow_the_archive() -> None:
    for plan in PLANS:
        mesh = plan.report.mesh
        if not plan.findings:
            assert mesh == ("normal",)
            continue
        assert len(mesh) == len(plan.findings)
        for finding, term in zip(plan.findings, mesh, strict=True):
            assert re.fullmatch(MESH[finding.kind], term), term
            if finding.side != "none":
                assert term.split("/")[-1] in (finding.side, finding.severity)
                assert finding.side in term
        assert problems(mesh) == tuple(term.split("/")[0] for term in mesh)


def test_impression_alone_names_the_findings() -> None:
    for plan in PLANS:
        impression = plan.report.impression.lower()
        for finding in plan.findings:
            assert any(word in impression for word in KEYWORDS[finding.kind])
            assert finding.side == "none" or finding.side in impression


def test_normal_reports_repeat_word_for_word() -> None:
    normal = Counter(plan.report.findings for plan in PLANS if not plan.findings)
    text, count = normal.most_common(1)[0]
    assert text and count >= 15
    assert sum(n for _, n in normal.most_common(4)) > 0.5 * sum(normal.values())


def test_archive_quirks_are_present() -> None:
    findings = [plan.report.findings for plan in PLANS]
    assert 0.01 <= np.mean([text == "" for text in findings]) <= 0.1
    sections = [
        section
        for plan in PLANS
        for section in (plan.report.indication, plan.report.findings, plan.report.impression)
    ]
    assert 0.1 < np.mean(["XXXX" in section for section in sections]) < 0.9
    assert any(re.match(r"XXXX-year-old (male|female|XXXX) with ", s) for s in sections)
    assert any(plan.report.comparison == "" for plan in PLANS)


def test_indication_is_weakly_related_to_the_label() -> None:
    def infectious_share(label: int) -> float:
        indications = [p.report.indication.lower() for p in PLANS if p.label == label]
        return np.mean([("cough" in i) or ("breath" in i) or ("dyspnea" in i) for i in indications])

    normal, abnormal = infectious_share(0), infectious_share(1)
    assert 0.05 < normal < abnormal < 0.8


def test_caption_says_how_many_views() -> None:
    for plan in PLANS[:100]:
        two_views = "lateral" in plan.report.caption.lower()
        assert two_views == (plan.lateral_id is not None)
