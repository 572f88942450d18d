"""What decoding JPEGs at full size costs `chestclip prepare` (issue 18: a reduced-scale JPEG
decode, ``Image.draft``, was faster but gave other pixels than the PNG of the same image).

One phantom chest X-ray at about a real radiograph's size, saved as PNG and as JPEG q95; each is
decoded and fitted to the model's size many times, on one thread: images/s for the JPEG at full
size (what ``load_xray`` does now), the JPEG with the draft decode (what it did before) and the
PNG, and the mean / largest difference of each JPEG decode from the PNG's pixels.

    python benchmarks/bench_decode.py [--side 2048] [--size 224] [--repeats 20]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from chestclip.data.images import fit_square, load_xray, to_grey
from chestclip.phantom import generate_phantoms


def draft_decode(data: bytes, size: int) -> np.ndarray:
    """``load_xray`` before issue 18: JPEGs decoded at a reduced DCT scale."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("L", (size, size))
        return fit_square(to_grey(image), size)


def rate(decode, repeats: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    for _ in range(repeats):
        pixels = decode()
    return repeats / (time.perf_counter() - start), pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048, help="source image side, pixels")
    parser.add_argument("--size", type=int, default=224, help="model input side, pixels")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate_phantoms(Path(tmp), studies=1, image_size=args.side, seed=3)
        with Image.open(sorted(Path(tmp, "NLMCXR_png").glob("*.png"))[0]) as image:
            grey = image.convert("L")
    png, jpeg = io.BytesIO(), io.BytesIO()
    grey.save(png, format="PNG")
    grey.save(jpeg, format="JPEG", quality=95)
    cases = {
        "JPEG full size": lambda: load_xray(jpeg.getvalue(), args.size),
        "JPEG draft (before)": lambda: draft_decode(jpeg.getvalue(), args.size),
        "PNG": lambda: load_xray(png.getvalue(), args.size),
    }
    results = {name: rate(decode, args.repeats) for name, decode in cases.items()}
    reference = results["PNG"][1].astype(int)
    print(f"{grey.width}×{grey.height} phantom → {args.size} px, {args.repeats} decodes each")
    for name, (per_second, pixels) in results.items():
        gap = np.abs(pixels.astype(int) - reference)
        print(
            f"{name:20s} {per_second:7.1f} images/s  |Δ| to PNG mean {gap.mean():.3f}, "
            f"max {gap.max()} grey levels"
        )


if __name__ == "__main__":
    main()
