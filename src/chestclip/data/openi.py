"""The official OpenI layout: ``ecgen-radiology/<n>.xml`` reports (a directory or the original
``NLMCXR_reports.tgz``) and PNGs named ``CXR<uid>_IM-xxxx-xxxx.png`` (a directory or
``NLMCXR_png.tgz``)."""

from __future__ import annotations

import gzip
import re
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
    REPORT_COLUMNS,
    UNKNOWN,
    Skipped,
    SourceRecords,
)

REPORTS_ARCHIVE, IMAGES_ARCHIVE = "NLMCXR_reports.tgz", "NLMCXR_png.tgz"
METADATA_NAMES = ("nlmcxr_dicom_metadata.csv", "nlmcxr_dicom_metadata.csv.gz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)
_VIEW_POSITIONS = {"PA": FRONTAL, "AP": FRONTAL, "LL": LATERAL, "RL": LATERAL, "LATERAL": LATERAL}
_SECTIONS = {"INDICATION": "indication", "COMPARISON": "comparison", "FINDINGS": "findings",
             "IMPRESSION": "impression"}  # fmt: skip


class OpenIFormatError(ValueError):
    """A metadata table that cannot be read as a whole; the message is one line naming it."""


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


def parse_report_xml(data: bytes) -> tuple[dict, list[tuple[str, str]]]:
    """One OpenI XML → (report fields, [(image id, caption), ...]); ValueError if malformed,
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
    report["label"] = label_from_terms(mesh)  # ValueError: no terms, or "No Indexing"
    report["mesh"] = ";".join(mesh)
    report["problems"] = ";".join(problems_from_mesh(mesh))
    images = [(p.get("id", ""), p.findtext("caption") or "") for p in root.findall("parentImage")]
    return report, [(i, c) for i, c in images if i]


def projection_from_caption(caption: str) -> str:
    """A caption naming only frontal or only lateral views gives the projection; else unknown."""
    words = set(re.findall(r"[a-z]+", caption.lower()))
    frontal, lateral = bool(words & {"pa", "ap", "frontal"}), bool(words & {"lateral", "lat"})
    return FRONTAL if frontal and not lateral else LATERAL if lateral and not frontal else UNKNOWN


def read_view_positions(source: Path) -> dict[str, str]:
    """Per-image projection from the collection's DICOM metadata table, when present."""
    folder = source if source.is_dir() else source.parent
    for name in METADATA_NAMES:
        path = folder / name
        if path.is_file():
            opener = gzip.open if name.endswith(".gz") else open
            try:
                with opener(path, "rt", encoding="utf-8") as handle:
                    table = pd.read_csv(handle, usecols=["imageid", "View Position"], dtype=str)
            except (ValueError, OSError, EOFError, pd.errors.ParserError) as err:
                # missing columns, non-UTF-8 bytes, broken gzip or quoting: the file is wrong
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise OpenIFormatError(f"{path}: unreadable projection table: {first}") from None
            table = table.dropna()
            return {
                canonical_id(i): _VIEW_POSITIONS.get(v.strip().upper(), UNKNOWN)
                for i, v in zip(table["imageid"], table["View Position"], strict=True)
            }
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
            report, refs = parse_report_xml(data)
        except ValueError as err:
            skipped.append(Skipped("report", Path(name.split(":")[-1]).stem, str(err), name))
            continue
        reports.append({**report, "file": name})
        for openi_id, caption in refs:
            image_id = canonical_id(openi_id)
            projection = views.get(image_id, UNKNOWN)
            if projection == UNKNOWN:
                projection = projection_from_caption(caption) if len(refs) == 1 else UNKNOWN
            images.append([image_id, report["uid"], projection, files.get(image_id, "")])
    return SourceRecords(
        layout="openi",
        reports=pd.DataFrame(reports, columns=REPORT_COLUMNS),
        images=pd.DataFrame(images, columns=IMAGE_COLUMNS),
        skipped=skipped,
        archive=archive,
        problems=problems,
    )
