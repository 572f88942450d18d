"""The phantom stage: plan the studies, render them, and write the dataset directory."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image
from tqdm import tqdm

import chestclip
from chestclip.phantom.layouts import (
    LAYOUTS,
    TruthRow,
    mask_path,
    truth_row,
    view_files,
    write_index,
)
from chestclip.phantom.study import StudyPlan, plan_study, render_study
from chestclip.utils.io import atomic_directory, atomic_write_json

MIN_IMAGE_SIZE = 32


@dataclass(frozen=True)
class PhantomSummary:
    """What ``generate_phantoms`` wrote."""

    out: Path
    layout: str
    n_studies: int
    n_images: int
    n_normal: int
    n_abnormal: int


def generate_phantoms(
    out: str | Path,
    studies: int = 200,
    image_size: int = 512,
    layout: Literal["openi", "kaggle", "mimic", "chexpert", "manifest"] = "openi",
    seed: int = 0,
    visibility: float = 1.0,
) -> PhantomSummary:
    """Write a synthetic IU X-Ray-like dataset of ``studies`` studies into ``out``.

    Images are ``image_size`` x ``image_size`` 8-bit PNGs; lesions are drawn on the frontal view
    at ``visibility`` (0 draws none; 1 is calibrated to be learnable but not trivial). The same
    ``seed`` gives byte-identical files, and the same studies in either ``layout``. ``out`` must
    not exist or be empty; it appears whole or not at all.
    """
    out = Path(out)
    _check_arguments(out, studies, image_size, layout, seed, visibility)
    plans = [plan_study(seed, uid) for uid in range(1, studies + 1)]
    truth: list[TruthRow] = []
    with atomic_directory(out) as tmp:
        for rows in tqdm(
            _render_all(tmp, plans, image_size, layout, visibility),
            total=studies,
            desc="phantom",
            unit="study",
            disable=None,
        ):
            truth.extend(rows)
        write_index(tmp, layout, plans, truth, image_size)
        params = {
            "generator": "chestclip.phantom",
            "version": chestclip.__version__,
            "studies": studies,
            "image_size": image_size,
            "layout": layout,
            "seed": seed,
            "visibility": visibility,
        }
        atomic_write_json(tmp / "phantom_params.json", params)
    n_abnormal = sum(plan.label for plan in plans)
    return PhantomSummary(
        out=out,
        layout=layout,
        n_studies=studies,
        n_images=sum(1 + (plan.lateral_id is not None) for plan in plans),
        n_normal=studies - n_abnormal,
        n_abnormal=n_abnormal,
    )


def _check_arguments(
    out: Path, studies: int, image_size: int, layout: str, seed: int, visibility: float
) -> None:
    """Raise a one-line error for an argument the generator cannot honour."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: already exists and is not an empty directory")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if studies < 1:
        raise ValueError(f"studies must be at least 1, not {studies}")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be at least {MIN_IMAGE_SIZE}, not {image_size}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, not {seed}")
    if not 0 <= visibility < math.inf:
        raise ValueError(f"visibility must be >= 0 and finite, not {visibility}")


def _render_all(
    out: Path, plans: list[StudyPlan], size: int, layout: str, visibility: float
) -> Iterator[list[TruthRow]]:
    """Render and write every study's images, yielding each study's truth rows in order.

    Threads suffice for parallelism: numpy, scipy and PNG compression release the GIL.
    """

    def work(plan: StudyPlan) -> list[TruthRow]:
        """Render and write one study."""
        return _write_study(out, plan, size, layout, visibility)

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        yield from pool.map(work, plans)


def _write_study(
    out: Path, plan: StudyPlan, size: int, layout: str, visibility: float
) -> list[TruthRow]:
    """Render one study, write its images and mask, and return its truth rows."""
    images = render_study(plan, size, visibility)
    (frontal_id, frontal_path), lateral = view_files(layout, plan)
    save_image(out / frontal_path, images.frontal.pixels)
    if lateral is not None and images.lateral is not None:
        save_image(out / lateral[1], images.lateral)
    lesions = images.frontal.lesions
    if not lesions:
        return []
    union = np.logical_or.reduce([mask for _, mask in lesions])
    save_image(out / mask_path(frontal_id), union.astype(np.uint8) * 255, noisy=False)
    return [truth_row(frontal_id, plan.uid, finding, mask) for finding, mask in lesions]


def save_image(path: Path | BinaryIO, pixels: np.ndarray, noisy: bool = True) -> None:
    """Save a uint8 ``[H, W]`` array as an 8-bit grey-scale PNG (to a path or a binary file), or
    a JPEG (quality 95, as MIMIC-CXR-JPG) where the path ends in .jpg.

    Noisy radiographs gain nothing from LZ77 matching: Huffman-only zlib is 3x faster and smaller.
    """
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".jpg":
            Image.fromarray(pixels).save(path, format="JPEG", quality=95)
            return
    options = {"compress_level": 1, "compress_type": 2} if noisy else {}
    Image.fromarray(pixels).save(path, format="PNG", **options)
