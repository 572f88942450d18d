"""Per-image zones against the template: IoU of each zone with its true region, on phantoms as
generated and under each variation of ``chestclip.phantom.variation`` (position, scale,
rotation; collimation and black padding; exposure).

The true zones are placed by the same rules (``place_zones``) on the phantom's true lung fields
and heart; the template is fitted into each film's content (padding excluded), as the fallback
is, and also shown as it was before, over the whole square. Prints the mean IoU per zone and the
share of films where the segmentation found the anatomy (elsewhere the fallback's IoU counts for
the per-image zones).

    python benchmarks/bench_zones.py [--films 100] [--size 128] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from chestclip.explain.anatomy import (
    ANATOMY,
    Anatomy,
    content_box,
    image_zones,
    place_zones,
    template_in,
)
from chestclip.explain.roi import TEMPLATE, zone_masks
from chestclip.phantom.study import plan_study
from chestclip.phantom.variation import VARIATIONS, varied_frontal


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def measure(films: int, size: int, seed: int) -> pd.DataFrame:
    rows, whole = [], zone_masks(size, size)  # the template as it was: over the whole square
    for name, variation in {"as generated": None, **VARIATIONS}.items():
        rng = np.random.default_rng(seed)
        for uid in range(1, films + 1):
            film, truth = varied_frontal(plan_study(seed, uid), variation, size, rng)
            true_anatomy = Anatomy(truth["right"], truth["left"], truth["heart"])
            true_zones = zone_masks(size, size, place_zones(true_anatomy))
            found = image_zones(film)
            template = zone_masks(size, size, template_in(content_box(film), size, size))
            for zone in TEMPLATE:
                rows.append(
                    {
                        "films": name,
                        "zone": zone,
                        "per-image": iou(found.masks[zone], true_zones[zone]),
                        "template": iou(template[zone], true_zones[zone]),
                        "whole-square template": iou(whole[zone], true_zones[zone]),
                        "anatomy found": found.source == ANATOMY,
                    }
                )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", type=int, default=100, help="films per variation")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the table as JSON here")
    args = parser.parse_args()
    table = measure(args.films, args.size, args.seed)
    methods = ["per-image", "template", "whole-square template"]
    by_zone = table.groupby(["films", "zone"], sort=False)[methods].mean()
    overall = table.groupby("films", sort=False)[[*methods, "anatomy found"]].mean()
    print(f"{args.films} films per variation at {args.size} px; mean IoU with the true zone\n")
    print(by_zone.unstack("films").round(3).to_string())
    print("\nall zones\n" + overall.round(3).to_string())
    if args.out:
        result = {
            "films": args.films,
            "size": args.size,
            "seed": args.seed,
            "overall": overall.round(4).to_dict(orient="index"),
            "per_zone": {
                films: group.droplevel(0).round(4).to_dict(orient="index")
                for films, group in by_zone.groupby(level=0, sort=False)
            },
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
