"""Phantom findings for a real report's MeSH major terms (``Opacity/lung/base/left/mild``).

A term's first component names the finding; its qualifiers give the patient's side (``right``,
``left``, ``bilateral``: one finding per side), the lung zone (``base``, ``lower lobe``,
``middle lobe``, ``lingula``, ``upper lobe``, ``apex``, ``hilum``) and the severity. Where a
qualifier is missing, the side or zone is drawn from the report's own random stream, so the same
report always gets the same lesions. Terms with no phantom equivalent (granulomas, spine, devices,
hyperinflation, ...) draw nothing and are returned so that they can be counted; "normal" draws
nothing and is not counted.
"""

from __future__ import annotations

import numpy as np

from chestclip.phantom.findings import LUNG_ZONES, NODULE_SIZES_CM, Finding

KINDS = {
    "cardiomegaly": "cardiomegaly",
    "pleural effusion": "effusion",
    "opacity": "opacity",
    "consolidation": "opacity",
    "airspace disease": "opacity",
    "infiltrate": "opacity",
    "pneumonia": "opacity",
    "nodule": "nodule",
    "mass": "nodule",
}
_ZONES = {  # qualifier → phantom lung zone (the left lung has no middle zone: the lingula is low)
    "base": "lower", "lower lobe": "lower", "lingula": "lower", "middle lobe": "middle",
    "hilum": "middle", "upper lobe": "upper", "apex": "upper",
}  # fmt: skip
_LARGER = {"moderate", "large", "severe"}
MASS_CM = max(NODULE_SIZES_CM)


def findings_from_mesh(
    terms: list[str], rng: np.random.Generator
) -> tuple[tuple[Finding, ...], list[str]]:
    """(the findings to draw, the first components of the terms that have no phantom
    equivalent). One finding per (kind, side, zone); at most one cardiomegaly."""
    findings: dict[tuple[str, str, str], Finding] = {}
    unmapped = []
    for term in terms:
        parts = [part.strip().lower() for part in term.split("/")]
        if parts[0] == "normal":
            continue
        kind = KINDS.get(parts[0])
        if kind is None:
            unmapped.append(term.split("/")[0].strip())
            continue
        for finding in _findings(kind, parts[0], set(parts[1:]), rng):
            findings.setdefault((finding.kind, finding.side, finding.zone), finding)
    return tuple(findings.values()), unmapped


def _findings(
    kind: str, root: str, qualifiers: set[str], rng: np.random.Generator
) -> list[Finding]:
    """The findings one term describes (two for a bilateral one)."""
    seed = int(rng.integers(2**31))
    if kind == "cardiomegaly":
        severity = "moderate" if qualifiers & _LARGER else "mild"
        return [Finding(kind, "none", "cardiac", severity, 0.0, seed)]
    sides = [s for s in ("right", "left") if s in qualifiers or "bilateral" in qualifiers]
    if not sides:
        sides = ["left"] if "lingula" in qualifiers else [str(rng.choice(("right", "left")))]
    found = []
    for index, side in enumerate(sides):
        seed_i = seed + index
        if kind == "effusion":
            severity = "moderate" if qualifiers & _LARGER else "small"
            found.append(Finding(kind, side, "costophrenic", severity, 0.0, seed_i))
            continue
        zone = next((_ZONES[q] for q in _ZONES if q in qualifiers), None)
        if zone not in LUNG_ZONES[side]:
            zone = str(rng.choice(LUNG_ZONES[side]))
        size_cm = 0.0
        if kind == "nodule":
            size_cm = MASS_CM if root == "mass" else float(rng.choice(NODULE_SIZES_CM))
        found.append(Finding(kind, side, zone, "", size_cm, seed_i))
    return found
