"""``chestclip prepare``: a download (IU X-Ray, MIMIC-CXR-JPG, CheXpert, a manifest CSV) → a
clean, patient-split, cached dataset directory.

Outputs (written atomically: a killed run leaves no half-written directory):
``studies.csv``, ``images.csv``, the image cache — ``images.npy`` (uint8 [N, S, S] in images.csv
row order, read with ``numpy.load(mmap_mode="r")``) or, for large datasets, ``shards/``
(``chestclip.data.shards``; its build resumes after a kill) — absent with ``images=False``,
``findings.csv`` (multi-label targets per study: 1, 0 or empty = masked) when the source has
findings, and ``summary.json``.
"""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from chestclip import __version__
from chestclip.config import PrepareConfig
from chestclip.data.findings import apply_policy, finding_counts, source_findings
from chestclip.data.images import decode_into
from chestclip.data.records import (
    FRONTAL,
    INFERRED,
    LATERAL,
    METADATA,
    NO_SOURCE,
    UNKNOWN,
    Skipped,
    SourceRecords,
    with_identity,
)
from chestclip.data.shard_cache import cache_as_shards, choose_cache, move_shards, work_directory
from chestclip.data.shards import SHARDS_DIR, ShardArray, read_index
from chestclip.data.sources import read_source
from chestclip.data.split import SPLITS, assign_splits
from chestclip.data.text import build_text
from chestclip.data.views import complete_views, frontal_probability
from chestclip.errors import ChestClipError
from chestclip.utils.io import atomic_directory, atomic_write_json

STUDY_COLUMNS = [
    "uid", "split", "label", "text", "indication", "findings", "impression", "comparison", "mesh",
    "problems", "n_images", "patient_id", "study_id",
]  # fmt: skip
IMAGE_TABLE_COLUMNS = [
    "image_id", "uid", "split", "label", "projection", "projection_source", "row", "file",
    "patient_id", "study_id",
]  # fmt: skip
IMAGES_FILE = "images.npy"
FINDINGS_FILE = "findings.csv"


@dataclass(frozen=True)
class PrepareSummary:
    """Where the prepared dataset is and what went into it (the content of summary.json)."""

    out: Path
    counts: dict[str, Any]

    @property
    def skipped(self) -> list[dict[str, str]]:
        return self.counts["skipped"]


def _uid_order(uids: pd.Series) -> pd.Series:
    return uids.map(lambda u: (0, int(u), "") if str(u).isdigit() else (1, 0, str(u)))


def _drop_duplicates(
    table: pd.DataFrame, key: str, kind: str, skipped: list[Skipped]
) -> pd.DataFrame:
    dup = table[key].duplicated(keep="first")
    skipped += [
        Skipped(kind, str(k), f"duplicate {key}", str(f))
        for k, f in zip(table.loc[dup, key], table.loc[dup, "file"], strict=True)
    ]
    return table[~dup]


def select_images(
    records: SourceRecords, config: PrepareConfig, skipped: list[Skipped]
) -> pd.DataFrame:
    """Images that belong to a parsed report (and, when images are decoded, have a file)."""
    images = _drop_duplicates(records.images, "image_id", "image", skipped)
    orphan = ~images["uid"].isin(records.reports["uid"])
    # an image of a report skipped for a reason (e.g. not indexed) is counted under that reason
    report_skipped = {s.id: s.reason.split(":")[0] for s in skipped if s.kind == "report"}
    for image_id, uid, file in images.loc[orphan, ["image_id", "uid", "file"]].itertuples(False):
        reason = f"report skipped, {report_skipped[uid]}" if uid in report_skipped else None
        skipped.append(Skipped("image", image_id, reason or "no report for this image", file))
    images = images[~orphan]
    if config.images:
        missing = images["file"] == ""
        skipped += [
            Skipped("image", i, "file missing", "") for i in images.loc[missing, "image_id"]
        ]
        images = images[~missing]
    order = images.assign(_k=_uid_order(images["uid"])).sort_values(["_k", "image_id"])
    return order.drop(columns="_k").reset_index(drop=True)


def infer_views(images: pd.DataFrame, array: np.ndarray | ShardArray | None) -> pd.DataFrame:
    """Fill in unknown projections from the pixels (``array[images["row"]]``; None without
    images) and the study's other view (``chestclip.data.views``)."""
    unknown = (images["projection"] == UNKNOWN).to_numpy()
    p_frontal = np.full(len(images), np.nan)
    if array is not None and unknown.any():
        positions = np.flatnonzero(unknown)
        rows = images["row"].to_numpy()[positions]
        p_frontal[positions] = frontal_probability(array[int(r)] for r in rows)
    projection = complete_views(images, p_frontal)
    inferred = unknown & (projection != UNKNOWN)
    source = images["projection_source"].where(~inferred, INFERRED)
    return images.assign(projection=projection, projection_source=source)


def _view_counts(images: pd.DataFrame) -> dict[str, dict[str, int]]:
    """{source: {projection: images}} over the kept images, every source and projection listed."""
    counts = images.groupby(["projection_source", "projection"]).size()
    return {
        source: {view: int(counts.get((source, view), 0)) for view in (FRONTAL, LATERAL, UNKNOWN)}
        for source in (METADATA, INFERRED, NO_SOURCE)
    }


def describe_views(counts: dict[str, Any]) -> str:
    """One line of a summary's ``views_by_source``: frontal, lateral and unknown images, and
    how many of them had their view from metadata, inferred or from nowhere."""
    by_source = counts["views_by_source"]
    totals = {
        view: sum(c[view] for c in by_source.values()) for view in (FRONTAL, LATERAL, UNKNOWN)
    }
    sources = ", ".join(
        f"{sum(c.values())} {source}" for source, c in by_source.items() if any(c.values())
    )
    return (
        f"views: {totals[FRONTAL]} frontal, {totals[LATERAL]} lateral, {totals[UNKNOWN]} unknown "
        f"(from {sources or 'no images'})"
    )


def decode_images(
    images: pd.DataFrame,
    archive: str | None,
    out_dir: Path,
    config: PrepareConfig,
    skipped: list[Skipped],
) -> pd.DataFrame:
    """Decode every image into ``out_dir/images.npy``; drop and list the undecodable ones."""
    shape = (len(images), config.image_size, config.image_size)
    array = np.lib.format.open_memmap(out_dir / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=shape)
    bar = lambda it: tqdm(it, total=len(images), desc="decoding images", unit="img", disable=None)  # noqa: E731
    errors = decode_into(
        images["file"].tolist(), archive, array, config.resize, config.workers, bar
    )
    for index, reason in sorted(errors.items()):
        skipped.append(
            Skipped("image", images.at[index, "image_id"], reason, images.at[index, "file"])
        )
    array.flush()
    del array
    keep = np.array([i for i in range(len(images)) if i not in errors], dtype=np.int64)
    return keep_rows(images, keep, out_dir)


def keep_rows(images: pd.DataFrame, keep: np.ndarray, out_dir: Path) -> pd.DataFrame:
    """``images`` reduced to the rows ``keep`` (ascending), ``out_dir/images.npy`` rewritten to
    match when rows go (row order stays images.csv order); ``row`` renumbered."""
    if len(keep) < len(images):
        array = np.load(out_dir / IMAGES_FILE, mmap_mode="r")
        compact = np.lib.format.open_memmap(
            out_dir / "images.tmp.npy",
            mode="w+",
            dtype=np.uint8,
            shape=(len(keep), *array.shape[1:]),
        )
        for start in range(0, len(keep), 1024):
            compact[start : start + 1024] = array[keep[start : start + 1024]]
        compact.flush()
        del array, compact
        (out_dir / "images.tmp.npy").replace(out_dir / IMAGES_FILE)
        images = images.iloc[keep].reset_index(drop=True)
    return images.assign(row=np.arange(len(images)))


def _split_counts(studies: pd.DataFrame, images: pd.DataFrame) -> dict[str, dict[str, int]]:
    counts = {}
    for split in SPLITS:
        part = studies[studies["split"] == split]
        counts[split] = {
            "patients": int(part["patient_id"].nunique()),
            "studies": len(part),
            "images": int((images["split"] == split).sum()),
            "normal": int((part["label"] == 0).sum()),
            "diseased": int((part["label"] == 1).sum()),
        }
    return counts


class PartialSourceError(ChestClipError):
    """A source that would give an incomplete or empty dataset (``allow_partial`` keeps it)."""


def _check_complete(partial: list[str], config: PrepareConfig) -> None:
    if partial and not config.allow_partial:
        raise PartialSourceError(
            f"{partial[0]}; nothing written (--allow-partial, or prepare.allow_partial, keeps "
            "what can be read and lists the problem in summary.json)"
        )


def _why_empty(source: str | Path, config: PrepareConfig, skipped: list[Skipped]) -> str:
    if not config.images:
        return f"{source}: no study kept: no report has {config.views} images"
    reasons = Counter(s.reason.split(":")[0] for s in skipped if s.kind == "image")
    found = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common()) or "none referenced"
    return (
        f"{source}: no study kept: no report has a readable image (images: {found}); "
        "for reports only, pass --no-images"
    )


def prepare_dataset(
    source: str | Path, out: str | Path, config: PrepareConfig | None = None
) -> PrepareSummary:
    """Parse, label, clean, split and cache a source (``chestclip.data.sources`` layouts)."""
    config = config or PrepareConfig()
    records = read_source(source, config.images, config.labeler, config.manifest)
    partial = list(records.problems)
    _check_complete(partial, config)  # before hours of decoding
    skipped = list(records.skipped)
    reports = _drop_duplicates(with_identity(records.reports), "uid", "report", skipped)
    reports_parsed = len(reports)
    with_images = reports[reports["uid"].isin(records.images["uid"])]
    no_images = reports[~reports["uid"].isin(records.images["uid"])]
    skipped += [
        Skipped("report", u, "no images", f)
        for u, f in zip(no_images["uid"], no_images["file"], strict=True)
    ]
    images = infer_views(select_images(records, config, skipped), None)  # the studies tell
    excluded_by_view, other_views = 0, set()
    if config.views == "frontal":  # what is known to be another view needs no decoding
        other = ~images["projection"].isin([FRONTAL, UNKNOWN])
        excluded_by_view, other_views = int(other.sum()), set(images.loc[other, "uid"])
        images = images[~other].reset_index(drop=True)
    cache = choose_cache(config.cache, len(images), config.image_size, records.archive)
    work, shard_counts = work_directory(Path(out)), {}

    with atomic_directory(out) as tmp:
        if config.images and cache == "shards":
            images, shard_counts = cache_as_shards(
                images, work, config.image_size, config.resize, config.shard_size,
                config.workers, skipped,
            )  # fmt: skip
            shards = work / SHARDS_DIR
            images = infer_views(images, ShardArray(shards, read_index(shards), config.image_size))
        elif config.images:
            images = decode_images(images, records.archive, tmp, config, skipped)
            images = infer_views(images, np.load(tmp / IMAGES_FILE, mmap_mode="r"))
        else:
            images = images.assign(row=-1)
        readable = other_views | set(images["uid"])
        if config.views == "frontal":
            frontal = (images["projection"] == FRONTAL).to_numpy()
            excluded_by_view += int((~frontal).sum())
            if config.images and cache == "array":  # shards: other rows are left unread
                images = keep_rows(images, np.flatnonzero(frontal), tmp)
            else:
                images = images[frontal]
        n_images = images.groupby("uid").size()
        studies = with_images[with_images["uid"].isin(n_images.index)].copy()
        lost = with_images[~with_images["uid"].isin(n_images.index)]
        skipped += [
            Skipped("report", u, "no frontal images" if u in readable else "no readable images", f)
            for u, f in zip(lost["uid"], lost["file"], strict=True)
        ]
        images = images[images["uid"].isin(studies["uid"])]
        if studies.empty:
            partial.append(_why_empty(source, config, skipped))
            _check_complete(partial, config)

        studies["text"] = build_text(studies, config.text_fields, config.clean)
        studies["n_images"] = studies["uid"].map(n_images).astype(int)
        studies["split"] = assign_splits(studies, config.split, config.seed).to_numpy()
        studies = studies.assign(_k=_uid_order(studies["uid"])).sort_values("_k").drop(columns="_k")
        by_uid = studies.set_index("uid")
        images = images.assign(**{c: images["uid"].map(by_uid[c]) for c in
                                  ("split", "label", "patient_id", "study_id")})  # fmt: skip

        studies[STUDY_COLUMNS].to_csv(tmp / "studies.csv", index=False)
        images[IMAGE_TABLE_COLUMNS].to_csv(tmp / "images.csv", index=False)
        findings = source_findings(records.findings, by_uid["mesh"])
        finding_summary = None
        if findings is not None:
            targets = apply_policy(findings, config.uncertain, config.missing)
            targets.astype("Int64").to_csv(tmp / FINDINGS_FILE, index_label="uid")
            finding_summary = finding_counts(findings, targets, by_uid["split"])
        counts = {
            "chestclip_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "source": str(Path(source).resolve()),
            "layout": records.layout,
            "has_reports": records.has_reports,
            "config": config.model_dump(mode="json"),
            "reports_parsed": reports_parsed,
            "reports_with_images": len(with_images),
            "studies": len(studies),
            "patients": int(studies["patient_id"].nunique()),
            "images": len(images),
            "image_size": config.image_size if config.images else None,
            "normal": int((studies["label"] == 0).sum()),
            "diseased": int((studies["label"] == 1).sum()),
            "images_excluded_by_view": excluded_by_view,
            "views_by_source": _view_counts(images),
            "cache": cache if config.images else None,
            **shard_counts,
            "splits": _split_counts(studies, images),
            "findings": finding_summary,
            "partial": partial,
            "skipped_count": len(skipped),
            "skipped_by_reason": dict(
                Counter(s.reason.split(":")[0] for s in skipped).most_common()
            ),
            "skipped": [s.as_dict() for s in skipped],
        }
        atomic_write_json(tmp / "summary.json", counts)
        if shard_counts:
            move_shards(work, tmp)
    return PrepareSummary(Path(out), counts)
