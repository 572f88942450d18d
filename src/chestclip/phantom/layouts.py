"""Writing a phantom dataset in the two layouts the real IU X-Ray collection ships in, and (in
``chestclip.phantom.clinical``) those of MIMIC-CXR-JPG, CheXpert and a manifest CSV.

``openi``: ``ecgen-radiology/<uid>.xml`` (the OpenI report archive's XML structure),
``NLMCXR_png/CXR<image id>.png``, ``nlmcxr_dicom_metadata.csv`` (``imageid,View Position``) and
``nlmcxr_tsne_pa.csv`` (``imageid,tsne-view``, the frontal image of each study), the two view
tables ``chestclip download iu-xray`` fetches beside the real archives.
``kaggle``: ``indiana_reports.csv``, ``indiana_projections.csv`` and
``images/images_normalized/<image id>.dcm.png``.
Both layouts also get the phantom's ground truth: ``phantom_truth.csv`` (one row per drawn
finding, bounding boxes as half-open pixel ranges ``[x0, x1) x [y0, y1)``),
``masks/<image id>_mask.png`` and ``phantom_studies.csv``. At visibility 0 nothing is drawn, so
the truth table is empty and ``masks/`` holds no file; the same seed at visibility 1 shows where the
lesions would be. ``phantom_params.json`` records the generator's arguments and version. Image ids
in these tables and mask names are the layout's own (MIMIC's dicom_id, CheXpert's view name).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd

from chestclip.data.openi import METADATA_TABLE, TSNE_VIEW_TABLE
from chestclip.phantom.clinical import CLINICAL_LAYOUTS, study_files, write_clinical_index
from chestclip.phantom.findings import Finding
from chestclip.phantom.reports import problems
from chestclip.phantom.study import StudyPlan
from chestclip.utils.io import atomic_path, atomic_write_text

LAYOUTS = ("openi", "kaggle", *CLINICAL_LAYOUTS)
IMAGE_DIRS = {"openi": Path("NLMCXR_png"), "kaggle": Path("images") / "images_normalized"}
MASK_DIR = Path("masks")
KAGGLE_COLUMNS = [
    "uid",
    "MeSH",
    "Problems",
    "image",
    "indication",
    "comparison",
    "findings",
    "impression",
]
TRUTH_COLUMNS = ["image_id", "uid", "finding", "side", "zone", "x0", "y0", "x1", "y1"]
STUDY_COLUMNS = ["uid", "label", "findings", "frontal_image_id", "lateral_image_id"]


@dataclass(frozen=True)
class TruthRow:
    """One drawn finding: where it is on the written frontal image (half-open pixel box)."""

    image_id: str
    uid: int
    finding: str
    side: str
    zone: str
    x0: int
    y0: int
    x1: int
    y1: int


def truth_row(image_id: str, uid: int, finding: Finding, mask: np.ndarray) -> TruthRow:
    """The truth row of ``finding`` whose boolean mask ``[H, W]`` is ``mask`` (non-empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    x0, x1, y0, y1 = int(cols[0]), int(cols[-1]) + 1, int(rows[0]), int(rows[-1]) + 1
    return TruthRow(image_id, uid, finding.kind, finding.side, finding.zone, x0, y0, x1, y1)


def image_path(layout: str, image_id: str) -> Path:
    """Path of an image relative to the dataset root, for a canonical image id."""
    name = f"CXR{image_id}.png" if layout == "openi" else f"{image_id}.dcm.png"
    return IMAGE_DIRS[layout] / name


def view_files(layout: str, plan: StudyPlan) -> tuple[tuple[str, Path], tuple[str, Path] | None]:
    """(image id, path relative to the dataset root) of the frontal view and of the lateral view
    (None without one), as ``layout`` names and places them."""
    if layout in CLINICAL_LAYOUTS:
        files = study_files(layout, plan)
        lateral = (files.lateral_id, files.lateral_path) if files.lateral_id else None
        return (files.frontal_id, files.frontal_path), lateral
    views = [(i, image_path(layout, i)) if i else None for i in (plan.frontal_id, plan.lateral_id)]
    return views[0], views[1]


def mask_path(image_id: str) -> Path:
    """Path of a frontal image's lesion mask relative to the dataset root."""
    return MASK_DIR / f"{image_id}_mask.png"


def write_index(
    out: Path, layout: str, plans: Sequence[StudyPlan], truth: Sequence[TruthRow], size: int
) -> None:
    """Write the layout's report/metadata files and the phantom ground-truth tables."""
    if layout in CLINICAL_LAYOUTS:
        write_clinical_index(out, layout, list(plans), size)
    elif layout == "openi":
        for plan in plans:
            atomic_write_text(out / "ecgen-radiology" / f"{plan.uid}.xml", openi_xml(plan))
        rows = [
            (f"CXR{image_id}", position)
            for plan in plans
            for image_id, position in ((plan.frontal_id, "PA"), (plan.lateral_id, "LL"))
            if image_id is not None
        ]
        _write_csv(out / METADATA_TABLE, rows, ["imageid", "View Position"])
        frontal = [(f"CXR{plan.frontal_id}", "PA") for plan in plans]
        _write_csv(out / TSNE_VIEW_TABLE, frontal, ["imageid", "tsne-view"])
    else:
        _write_csv(out / "indiana_reports.csv", [_kaggle_report(p) for p in plans], KAGGLE_COLUMNS)
        rows = [
            (plan.uid, f"{image_id}.dcm.png", projection)
            for plan in plans
            for image_id, projection in ((plan.frontal_id, "Frontal"), (plan.lateral_id, "Lateral"))
            if image_id is not None
        ]
        _write_csv(out / "indiana_projections.csv", rows, ["uid", "filename", "projection"])
    _write_csv(out / "phantom_truth.csv", [astuple(row) for row in truth], TRUTH_COLUMNS)
    studies = []
    for plan in plans:
        (frontal, _), lateral = view_files(layout, plan)
        kinds = ";".join(f.kind for f in plan.findings)
        studies.append((plan.uid, plan.label, kinds, frontal, lateral[0] if lateral else ""))
    _write_csv(out / "phantom_studies.csv", studies, STUDY_COLUMNS)


def _kaggle_report(plan: StudyPlan) -> tuple:
    """One row of ``indiana_reports.csv``."""
    report = plan.report
    return (
        plan.uid,
        ";".join(report.mesh),
        ";".join(problems(report.mesh)),
        report.caption,
        report.indication,
        report.comparison,
        report.findings,
        report.impression,
    )


def _write_csv(path: Path, rows: Sequence[Sequence], columns: list[str]) -> None:
    """Write ``rows`` under ``columns`` atomically; empty strings become empty cells."""
    with atomic_path(path) as tmp:
        pd.DataFrame(list(rows), columns=columns).to_csv(tmp, index=False, lineterminator="\n")


def openi_xml(plan: StudyPlan) -> str:
    """The OpenI ``ecgen-radiology`` XML of a study (the archive's elements, abridged)."""
    report, uid = plan.report, plan.uid
    lines = [
        '<?xml version="1.0" encoding="utf-8"?>',
        "<eCitation>",
        '   <meta type="rr"/>',
        f'   <uId id="CXR{uid}"/>',
        f'   <pmcId id="{uid}"/>',
        "   <docSource>CXR</docSource>",
        f'   <IUXRId id="{uid}"/>',
        "   <licenseType>open-access</licenseType>",
        '   <MedlineCitation Owner="Indiana University" Status="supplied by publisher">',
        '      <Article PubModel="Electronic">',
        "         <ArticleTitle>Indiana University Chest X-ray Collection</ArticleTitle>",
        "         <Abstract>",
    ]
    sections = (
        ("COMPARISON", report.comparison),
        ("INDICATION", report.indication),
        ("FINDINGS", report.findings),
        ("IMPRESSION", report.impression),
    )
    for label, text in sections:
        element = f'            <AbstractText Label="{label}"'
        lines.append(f"{element}>{escape(text)}</AbstractText>" if text else f"{element}/>")
    lines += ["         </Abstract>", "      </Article>", "   </MedlineCitation>", "   <MeSH>"]
    lines += [f"      <major>{escape(term)}</major>" for term in report.mesh]
    lines.append("   </MeSH>")
    image_ids = sorted(i for i in (plan.frontal_id, plan.lateral_id) if i is not None)
    for figure, image_id in enumerate(image_ids, 1):
        lines += [
            f"   <parentImage id={quoteattr('CXR' + image_id)}>",
            f"      <figureId>F{figure}</figureId>",
            f"      <caption>{escape(report.caption)}</caption>",
            '      <panel type="single">',
            f"         <url>/hadoop/storage/radiology/extract/CXR{image_id}.jpg</url>",
            "      </panel>",
            "   </parentImage>",
        ]
    lines.append("</eCitation>")
    return "\n".join(lines) + "\n"
