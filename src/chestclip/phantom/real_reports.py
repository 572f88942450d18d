"""A fixture that IS the real download: phantom images for every real IU X-Ray report.

``generate_from_reports`` reads the real ``NLMCXR_reports.tgz`` and writes what ``chestclip
download iu-xray --only reports --only images`` would leave (the archives, no view table):

- ``NLMCXR_reports.tgz``: the real archive, copied byte for byte (with ``studies``: a gzipped tar
  of the chosen reports' members, each byte for byte);
- ``NLMCXR_png.tgz``: ``CXR<id>.png`` for every ``parentImage`` of those reports, at the top of
  the archive as OpenI's is, so every report keeps its real number of images (none for some);

and, in files ``prepare`` ignores, the phantom truth: ``phantom_views.csv`` (the view drawn for
every image), ``phantom_truth.csv`` and ``masks/`` (lesions, as ``generate_phantoms`` writes
them) and ``phantom_params.json`` (arguments, and the MeSH terms that drew nothing, counted).
``check_inferred_views`` scores the views ``prepare`` inferred against ``phantom_views.csv``.

Lesions follow each report's MeSH terms (``chestclip.phantom.mesh``; "normal" draws none) and are
drawn on its frontal images; all images of a report show one patient. Which images are frontal:
from ``projections`` (the Kaggle layout's ``indiana_projections.csv``, matched on the report and
the ``IM-xxxx-xxxx`` part of the name) where given, else the first image of each report in id
order is frontal and the others lateral (in the real two-image studies that rule is right for
2,909 of 3,210).
"""

from __future__ import annotations

import io
import re
import shutil
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import chestclip
from chestclip.data.dataset import PreparedData
from chestclip.data.openi import IMAGES_ARCHIVE, REPORTS_ARCHIVE, canonical_id, parse_report_xml
from chestclip.data.records import FRONTAL, INFERRED, LATERAL
from chestclip.errors import ChestClipError
from chestclip.phantom.exposure import expose
from chestclip.phantom.findings import draw_frontal
from chestclip.phantom.frontal import sample_frontal_anatomy
from chestclip.phantom.generate import MIN_IMAGE_SIZE, save_image
from chestclip.phantom.lateral import render_lateral, sample_lateral_anatomy
from chestclip.phantom.layouts import MASK_DIR, TRUTH_COLUMNS, TruthRow, mask_path, truth_row
from chestclip.phantom.mesh import findings_from_mesh
from chestclip.utils.io import atomic_directory, atomic_write_json

VIEWS_FILE = "phantom_views.csv"
VIEW_COLUMNS = ["image_id", "uid", "projection", "n_findings"]
_IMAGE_NUMBER = re.compile(r"IM-[0-9-]+")


@dataclass(frozen=True)
class ReportPhantomSummary:
    """What ``generate_from_reports`` wrote."""

    out: Path
    n_reports: int
    n_images: int
    n_frontal: int
    n_with_lesions: int  # reports whose terms drew at least one finding
    unmapped_terms: dict[str, int]  # MeSH term → reports in which it drew nothing


@dataclass(frozen=True)
class ViewCheck:
    """The views ``prepare`` inferred for a prepared dataset, scored against the phantom truth."""

    truth: Path  # the phantom_views.csv scored against
    inferred: int  # images whose view was inferred
    checked: int  # of those, the images the truth lists
    correct: int  # of those, the images inferred as the view they were drawn in

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.checked if self.checked else None

    def describe(self) -> str:
        if self.accuracy is None:
            return f"views inferred: {self.inferred}; none of them listed in {self.truth}"
        return (
            f"views inferred: {self.inferred}; accuracy against {self.truth}: "
            f"{self.accuracy:.1%} ({self.correct} of {self.checked})"
        )


@dataclass(frozen=True)
class _Report:
    member: tarfile.TarInfo
    data: bytes
    uid: str
    mesh: list[str]
    images: list[str]  # OpenI ids, "CXR1_1_IM-0001-3001"


@dataclass(frozen=True)
class _Rendered:
    pngs: list[tuple[str, bytes]]
    views: list[tuple[str, str, str, int]]
    truth: list[TruthRow]
    unmapped: list[str]


def generate_from_reports(
    reports: str | Path,
    out: str | Path,
    studies: int | None = None,
    image_size: int = 512,
    seed: int = 0,
    visibility: float = 1.0,
    projections: str | Path | None = None,
) -> ReportPhantomSummary:
    """Write the real-reports fixture into ``out`` (see the module docstring): every report of
    ``reports`` (an ``NLMCXR_reports.tgz``), or ``studies`` of them chosen by a permutation seeded
    with ``seed``. ``out`` must not exist or be empty; it appears whole or not at all."""
    reports, out = Path(reports), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ChestClipError(f"{out}: already exists and is not an empty directory")
    if image_size < MIN_IMAGE_SIZE:
        raise ChestClipError(f"image size must be at least {MIN_IMAGE_SIZE}, not {image_size}")
    chosen = _choose(_read_reports(reports), studies, seed)
    views = _view_truth(Path(projections)) if projections else {}
    rendered: list[_Rendered] = []
    with atomic_directory(out) as tmp:
        (tmp / MASK_DIR).mkdir()
        with tarfile.open(tmp / IMAGES_ARCHIVE, "w:gz", compresslevel=1) as tar:
            for result in _render_all(tmp, chosen, views, image_size, seed, visibility):
                for name, data in result.pngs:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                rendered.append(result)
        if studies is None:
            shutil.copyfile(reports, tmp / REPORTS_ARCHIVE)
        else:
            _write_reports(tmp / REPORTS_ARCHIVE, chosen)
        view_rows = [row for r in rendered for row in r.views]
        pd.DataFrame(view_rows, columns=VIEW_COLUMNS).to_csv(tmp / VIEWS_FILE, index=False)
        truth = [astuple(row) for r in rendered for row in r.truth]
        pd.DataFrame(truth, columns=TRUTH_COLUMNS).to_csv(tmp / "phantom_truth.csv", index=False)
        unmapped = Counter(term for r in rendered for term in set(r.unmapped))
        params = {
            "generator": "chestclip.phantom.real_reports",
            "version": chestclip.__version__,
            "reports": str(reports.resolve()),
            "studies": studies,
            "image_size": image_size,
            "seed": seed,
            "visibility": visibility,
            "projections": str(Path(projections).resolve()) if projections else None,
            "unmapped_terms": dict(unmapped.most_common()),
        }
        atomic_write_json(tmp / "phantom_params.json", params)
    return ReportPhantomSummary(
        out=out,
        n_reports=len(chosen),
        n_images=len(view_rows),
        n_frontal=sum(row[2] == FRONTAL for row in view_rows),
        n_with_lesions=len({row[1] for row in view_rows if row[3]}),
        unmapped_terms=dict(unmapped.most_common()),
    )


def _read_reports(archive: Path) -> list[_Report]:
    """Every XML member of the reports archive with what its report says (unparsable reports
    are kept, with no terms and no images, so that ``prepare`` meets them as in the real one)."""
    found = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if not (member.isfile() and member.name.endswith(".xml")):
                    continue
                data = tar.extractfile(member).read()
                try:
                    report, refs = parse_report_xml(data, labelled=False)
                except ValueError:
                    found.append(_Report(member, data, "", [], []))
                    continue
                mesh = report["mesh"].split(";") if report["mesh"] else []
                found.append(_Report(member, data, report["uid"], mesh, refs))
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ChestClipError(f"{archive}: cannot read the reports archive: {err}") from None
    if not found:
        raise ChestClipError(f"{archive}: no report XML in this archive")
    return found


def _choose(reports: list[_Report], studies: int | None, seed: int) -> list[_Report]:
    """All reports, or the first ``studies`` of a seeded permutation, in archive order."""
    if studies is None or studies >= len(reports):
        return reports
    if studies < 1:
        raise ChestClipError(f"studies must be at least 1, not {studies}")
    picked = np.random.default_rng(seed).permutation(len(reports))[:studies]
    return [reports[i] for i in sorted(picked)]


def _view_truth(path: Path) -> dict[tuple[str, str], str]:
    """{(report uid, "IM-xxxx-xxxx"): projection} from a Kaggle ``indiana_projections.csv``."""
    try:
        table = pd.read_csv(path, usecols=["uid", "filename", "projection"], dtype=str)
    except (ValueError, OSError) as err:
        problem = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ChestClipError(f"{path}: not a projections table: {problem}") from None
    views = {}
    for uid, name, projection in table.itertuples(index=False):
        match = _IMAGE_NUMBER.search(str(name))
        if match and str(projection).capitalize() in (FRONTAL, LATERAL):
            views[(str(uid).strip(), match.group())] = str(projection).capitalize()
    return views


def _projections(report: _Report, views: dict[tuple[str, str], str]) -> list[str]:
    """The view to draw for each image of ``report``: from ``views``, else first-is-frontal."""
    first = min(report.images) if report.images else None
    result = []
    for image in report.images:
        match = _IMAGE_NUMBER.search(image)
        known = views.get((report.uid, match.group())) if match else None
        result.append(known or (FRONTAL if image == first else LATERAL))
    return result


def _render_all(
    out: Path,
    reports: list[_Report],
    views: dict[tuple[str, str], str],
    size: int,
    seed: int,
    visibility: float,
) -> Iterator[_Rendered]:
    """Render every report's images (threads: numpy and PNG compression release the GIL)."""

    def work(report: _Report) -> _Rendered:
        return _render(out, report, _projections(report, views), size, seed, visibility)

    with ThreadPoolExecutor(max_workers=4) as pool:
        yield from pool.map(work, reports)


def _render(
    out: Path, report: _Report, projections: list[str], size: int, seed: int, visibility: float
) -> _Rendered:
    """One report: its findings from the MeSH terms, one patient's anatomy, every image."""
    if not report.images:
        return _Rendered([], [], [], [])
    uid = int(report.uid) if report.uid.isdigit() else zlib.crc32(report.uid.encode())
    streams = np.random.SeedSequence(seed, spawn_key=(uid,)).spawn(4)
    findings_rng, frontal_rng, lateral_rng, noise_rng = (np.random.default_rng(s) for s in streams)
    findings, unmapped = findings_from_mesh(report.mesh, findings_rng)
    frontal, lateral = sample_frontal_anatomy(frontal_rng), sample_lateral_anatomy(lateral_rng)
    pngs, rows, truth = [], [], []
    for openi_id, projection in zip(report.images, projections, strict=True):
        image_id, noise_seed = canonical_id(openi_id), int(noise_rng.integers(2**63))
        if projection == FRONTAL:
            drawn = draw_frontal(frontal, findings, size, visibility, noise_seed)
            pixels, lesions = drawn.pixels, drawn.lesions
        else:
            density, noise = render_lateral(lateral, size), np.random.default_rng(noise_seed)
            pixels, lesions = expose(density, lateral.exposure, noise), ()
        buffer = io.BytesIO()
        save_image(buffer, pixels)
        pngs.append((f"{openi_id}.png", buffer.getvalue()))
        rows.append((image_id, report.uid, projection, len(lesions)))
        if lesions:
            union = np.logical_or.reduce([mask for _, mask in lesions])
            save_image(out / mask_path(image_id), union.astype(np.uint8) * 255, noisy=False)
            truth += [truth_row(image_id, uid, finding, mask) for finding, mask in lesions]
    return _Rendered(pngs, rows, truth, unmapped)


def _write_reports(path: Path, reports: list[_Report]) -> None:
    """A gzipped tar of the chosen reports' members, each with its original name and bytes."""
    with tarfile.open(path, "w:gz") as tar:
        for report in reports:
            info = tarfile.TarInfo(report.member.name)
            info.size, info.mtime, info.mode = len(report.data), report.member.mtime, 0o644
            tar.addfile(info, io.BytesIO(report.data))


def check_inferred_views(prepared: str | Path) -> ViewCheck | None:
    """The views inferred in the prepared dataset ``prepared`` against the ``phantom_views.csv``
    of its source (in the source folder, or beside the source archive); None when the source
    has no such file (it is not a phantom fixture)."""
    data = PreparedData(prepared)
    source = Path(data.summary["source"])
    truth_path = (source if source.is_dir() else source.parent) / VIEWS_FILE
    if not truth_path.is_file():
        return None
    try:
        truth = pd.read_csv(truth_path, usecols=["image_id", "projection"], dtype=str)
    except (ValueError, OSError) as err:
        problem = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ChestClipError(f"{truth_path}: not a phantom view table: {problem}") from None
    drawn = truth.drop_duplicates("image_id").set_index("image_id")["projection"]
    inferred = data.images[data.images["projection_source"] == INFERRED]
    expected = inferred["image_id"].map(drawn)
    listed = expected.notna()
    correct = int((inferred["projection"][listed] == expected[listed]).sum())
    return ViewCheck(truth_path, len(inferred), int(listed.sum()), correct)
