"""The official OpenI layout: ``ecgen-radiology/<n>.xml`` reports (a directory or the original
``NLMCXR_reports.tgz``) and PNGs named ``CXR<uid>_IM-xxxx-xxxx.png`` (a directory or
``NLMCXR_png.tgz``)."""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from chestclip.data.labels import label_from_terms, problems_from_mesh
from chestclip.data.records import (
    FRONTAL,
    IMAGE_COLUMNS,
    LATERAL,
    METADATA,
    NO_SOURCE,
    REPORT_COLUMNS,
    UNKNOWN,
    Skipped,
    SourceFormatError,
    SourceRecords,
)

REPORTS_ARCHIVE, IMAGES_ARCHIVE = "NLMCXR_reports.tgz", "NLMCXR_png.tgz"
# Per-image view tables of the collection (torchxrayvision's package data; `chestclip download
# iu-xray` fetches both): the DICOM headers, and a view derived from a t-SNE of the pixels for one
# image per report. Either may sit beside the archives, plain or gzipped.
METADATA_TABLE, TSNE_VIEW_TABLE = "nlmcxr_dicom_metadata.csv", "nlmcxr_tsne_pa.csv"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)
# DICOM View Position values that can be trusted. "PA" cannot: measured against the Kaggle
# layout's projection labels, 1,368 of the 3,590 images the table marks PA are lateral films (the
# modality's default left unchanged), while these values are right for 1,276 of 1,290 images.
_VIEW_POSITIONS = {
    "AP": FRONTAL, "LL": LATERAL, "RL": LATERAL, "LATERAL": LATERAL, "LARGE LATERAL": LATERAL,
}  # fmt: skip
# the t-SNE view: right for 3,819 of its 3,850 images (measured as above)
_TSNE_VIEWS = {"PA": FRONTAL, "L": LATERAL}
_SECTIONS = {"INDICATION": "indication", "COMPARISON": "comparison", "FINDINGS": "findings",
             "IMPRESSION": "impression"}  # fmt: skip


def canonical_id(openi_id: str) -> str:
    """OpenI ids carry a ``CXR`` prefix that the Kaggle layout drops (``CXR1`` ↔ ``1``)."""
    return openi_id[3:] if openi_id.upper().startswith("CXR") else openi_id


def is_openi(path: Path) -> bool:
    if path.is_file():
        return path.name.endswith((".tgz", ".tar.gz"))
    return (path / "ecgen-radiology").is_dir() or (path / REPORTS_ARCHIVE).is_file()


def _iter_xml(source: Path, problems: list[str]) -> Iterator[tuple[str, bytes | None, str]]:
    """Yield (file name, bytes or None if unreadable, error) for every report XML; a broken
    archive is also added to ``problems``."""
    archive = source if source.is_file() else source / REPORTS_ARCHIVE
    if source.is_dir() and (source / "ecgen-radiology").is_dir():
        for path in sorted((source / "ecgen-radiology").glob("*.xml")):
            try:
                yield str(path), path.read_bytes(), ""
            except OSError as err:
                yield str(path), None, f"unreadable file: {err}"
        return
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".xml"):
                    handle = tar.extractfile(member)
                    yield f"{archive}:{member.name}", handle.read() if handle else None, ""
    except _ARCHIVE_ERRORS as err:
        problems.append(_archive_problem(archive, err))
        yield str(archive), None, f"corrupt or truncated archive: {err}"


def _archive_problem(archive: Path, err: BaseException) -> str:
    return f"{archive}: corrupt or truncated archive ({str(err).strip() or type(err).__name__})"


def parse_report_xml(data: bytes, labelled: bool = True) -> tuple[dict, list[str]]:
    """One OpenI XML → (report fields, [image id, ...]); ValueError if malformed. With
    ``labelled`` the fields include the label: ValueError without MeSH terms,
    ``labels.UnlabelledReport`` if never indexed."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise ValueError(f"malformed XML: {err}") from None
    uid_node = root.find("uId")
    if uid_node is None or not uid_node.get("id"):
        raise ValueError("malformed report: no <uId id=...>")
    report = {"uid": canonical_id(uid_node.get("id").strip())}
    report.update(dict.fromkeys(_SECTIONS.values(), ""))
    for node in root.iter("AbstractText"):
        field = _SECTIONS.get((node.get("Label") or "").upper())
        if field:
            report[field] = " ".join("".join(node.itertext()).split())
    mesh = [m.text.strip() for m in root.findall("MeSH/major") if m.text and m.text.strip()]
    if labelled:
        report["label"] = label_from_terms(mesh)  # ValueError: no terms, or "No Indexing"
    report["mesh"] = ";".join(mesh)
    report["problems"] = ";".join(problems_from_mesh(mesh))
    return report, [p.get("id") for p in root.findall("parentImage") if p.get("id")]


def read_view_positions(source: Path) -> dict[str, str]:
    """Per-image projection (Frontal/Lateral) from the collection's view tables, when present:
    the t-SNE view first, then the DICOM View Position where it can be trusted (see above)."""
    folder = source if source.is_dir() else source.parent
    views = _read_table(folder, METADATA_TABLE, "View Position", _VIEW_POSITIONS)
    views.update(_read_table(folder, TSNE_VIEW_TABLE, "tsne-view", _TSNE_VIEWS))
    return views


def _read_table(folder: Path, name: str, column: str, meaning: dict[str, str]) -> dict[str, str]:
    """{canonical image id: projection} for the rows of ``folder/name[.gz]`` whose ``column``
    has a value in ``meaning``."""
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            try:
                table = pd.read_csv(path, usecols=["imageid", column], dtype=str).dropna()
            except (ValueError, OSError, EOFError) as err:
                # missing column, non-UTF-8 bytes, broken gzip or quoting: the file is wrong
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise SourceFormatError(f"{path}: unreadable view table: {first}") from None
            values = table[column].str.strip().str.upper().map(meaning)
            known = values.notna()
            return dict(zip(table["imageid"][known].map(canonical_id), values[known], strict=True))
    return {}


def _image_files(source: Path, problems: list[str]) -> tuple[dict[str, str], str | None]:
    """Map canonical image id → file (or tar member), and the archive path if images are in one;
    a broken archive lists the members before the break and is added to ``problems``."""
    folder = source if source.is_dir() else source.parent
    archive = folder / IMAGES_ARCHIVE
    if archive.is_file():
        names = []
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES):
                        names.append(member.name)
        except _ARCHIVE_ERRORS as err:
            problems.append(_archive_problem(archive, err))
        return {canonical_id(Path(n).stem): n for n in names}, str(archive)
    files = (p for p in folder.rglob("CXR*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return {canonical_id(p.stem): str(p) for p in sorted(files)}, None


def read_openi(source: Path, with_images: bool = True) -> SourceRecords:
    """Parse every report of an OpenI source; list every image it references."""
    reports, images, skipped, problems = [], [], [], []
    views = read_view_positions(source)
    files, archive = _image_files(source, problems) if with_images else ({}, None)
    for name, data, error in _iter_xml(source, problems):
        if data is None:
            skipped.append(Skipped("report", Path(name).stem, error, name))
            continue
        try:
            report, refs = parse_report_xml(data, labelled=False)
        except ValueError as err:
            skipped.append(Skipped("report", Path(name.split(":")[-1]).stem, str(err), name))
            continue
        try:
            report["label"] = label_from_terms(report["mesh"].split(";") if report["mesh"] else [])
        except ValueError as err:  # never indexed, or no terms: its images are counted as skipped
            skipped.append(Skipped("report", report["uid"], str(err), name))
        else:
            reports.append({**report, "file": name})
        # Captions describe the examination, not the image ("Xray Chest PA and Lateral" on both
        # films; "XXXX and lateral", de-identified; "AP portable chest" on a lateral film): of
        # the 17 single-image reports whose caption names one view, 11 name the wrong one.
        for openi_id in refs:
            image_id = canonical_id(openi_id)
            projection = views.get(image_id, UNKNOWN)
            origin = METADATA if projection != UNKNOWN else NO_SOURCE
            images.append([image_id, report["uid"], projection, origin, files.get(image_id, "")])
    return SourceRecords(
        layout="openi",
        reports=pd.DataFrame(reports, columns=REPORT_COLUMNS),
        images=pd.DataFrame(images, columns=IMAGE_COLUMNS),
        skipped=skipped,
        archive=archive,
        problems=problems,
    )
