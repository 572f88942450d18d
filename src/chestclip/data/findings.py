"""Multi-label findings: the 14 CheXpert labels, IU X-Ray's MeSH terms mapped onto them, and the
policies that turn uncertain and missing labels into training targets.

Raw label values follow the CheXpert labeler's files (CheXpert ``train.csv``, MIMIC-CXR
``-chexpert.csv``/``-negbio.csv``): 1 positive, 0 negative, −1 uncertain, blank (NaN) not
mentioned. Targets are 1, 0 or NaN, NaN meaning "masked": left out of the loss and the metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from chestclip.data.records import SourceFormatError
from chestclip.data.split import SPLITS

LabelPolicy = Literal["ignore", "zeros", "ones"]
POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0
NO_FINDING, SUPPORT_DEVICES = "No Finding", "Support Devices"
# the order of CheXpert's train.csv (MIMIC-CXR lists the same names alphabetically)
CHEXPERT_FINDINGS: tuple[str, ...] = (
    NO_FINDING,
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    SUPPORT_DEVICES,
)
# Labels that do not make a study "diseased" (CheXpert's own No Finding rule ignores devices).
NOT_DISEASE = frozenset({NO_FINDING, SUPPORT_DEVICES})

# IU X-Ray MeSH major terms → CheXpert names, in the spirit of torchxrayvision's OpenI mapping
# (written from the headings of the 3,955 real reports). Key: a term's first '/'-component,
# lower case. Absent terms are negatives: OpenI indexed every finding the report states.
MESH_HEADINGS = {
    "cardiomegaly": "Cardiomegaly",
    "pleural effusion": "Pleural Effusion",
    "opacity": "Lung Opacity",
    "airspace disease": "Lung Opacity",
    "infiltrate": "Lung Opacity",
    "consolidation": "Consolidation",
    "pneumothorax": "Pneumothorax",
    "hydropneumothorax": "Pneumothorax",
    "hemopneumothorax": "Pneumothorax",
    "pulmonary atelectasis": "Atelectasis",
    "atelectasis": "Atelectasis",
    "pulmonary edema": "Edema",
    "edema": "Edema",
    "pulmonary congestion": "Edema",  # the CheXpert labeler counts vascular congestion as edema
    "nodule": "Lung Lesion",
    "mass": "Lung Lesion",
    "pneumonia": "Pneumonia",
    "fractures, bone": "Fracture",
    "catheters, indwelling": SUPPORT_DEVICES,
    "tube, inserted": SUPPORT_DEVICES,
    "implanted medical device": SUPPORT_DEVICES,
    "medical device": SUPPORT_DEVICES,
    "stents": SUPPORT_DEVICES,
    "surgical instruments": SUPPORT_DEVICES,  # surgical clips
}
# Headings that name a finding only with a given qualifier: (heading, second component).
MESH_QUALIFIED = {
    ("density", "lung"): "Lung Opacity",
    ("cardiac shadow", "enlarged"): "Cardiomegaly",
    ("mediastinum", "prominent"): "Enlarged Cardiomediastinum",
    ("thickening", "pleura"): "Pleural Other",
}
# An "Opacity/<site>" outside the lungs is not a lung opacity.
NON_LUNG_SITES = frozenset({"ribs", "thoracic vertebrae", "adipose tissue", "heart", "mediastinum"})
UNCERTAIN_QUALIFIER = "borderline"  # "Cardiomegaly/borderline" is uncertain, as for the labeler
NORMAL_TERM, NOT_INDEXED_TERM = "normal", "no indexing"


def mesh_finding(term: str) -> tuple[str | None, float]:
    """The finding one MeSH major term names, and its value (1, or −1 when "borderline")."""
    parts = [part.strip().lower() for part in term.split("/")]
    heading, qualifier = parts[0], parts[1] if len(parts) > 1 else ""
    finding = MESH_QUALIFIED.get((heading, qualifier)) or MESH_HEADINGS.get(heading)
    if finding == "Lung Opacity" and heading == "opacity" and qualifier in NON_LUNG_SITES:
        finding = None
    return finding, UNCERTAIN if UNCERTAIN_QUALIFIER in parts[1:] else POSITIVE


def findings_from_mesh(mesh: pd.Series, names: Sequence[str] = CHEXPERT_FINDINGS) -> pd.DataFrame:
    """Raw findings [studies, names] from ';'-joined MeSH major terms (index kept).

    A finding is 1 when a term names it, −1 when the only terms naming it are "borderline", else
    0; No Finding is 1 exactly when every term is "normal". A report indexed only as "No Indexing"
    has every finding missing (NaN): nobody read it for findings.
    """
    rows = []
    for joined in mesh:
        terms = [t.strip() for t in str(joined).split(";") if t.strip()]
        lowered = {t.lower() for t in terms}
        if not terms or lowered == {NOT_INDEXED_TERM}:
            rows.append(dict.fromkeys(names, np.nan))
            continue
        row = dict.fromkeys(names, NEGATIVE)
        for term in terms:
            finding, value = mesh_finding(term)
            if finding in row:
                row[finding] = value if row[finding] == NEGATIVE else max(row[finding], value)
        if NO_FINDING in row:
            row[NO_FINDING] = POSITIVE if lowered == {NORMAL_TERM} else NEGATIVE
        rows.append(row)
    return pd.DataFrame(rows, index=mesh.index, columns=list(names), dtype=float)


def source_findings(findings: pd.DataFrame | None, mesh: pd.Series) -> pd.DataFrame | None:
    """Raw findings of the studies ``mesh`` is indexed by (uids): the source's own labels, else
    those its MeSH terms name (IU X-Ray), else None (no findings)."""
    if findings is not None:
        return findings.reindex(mesh.index)
    return findings_from_mesh(mesh) if (mesh != "").any() else None


def parse_label_values(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """CSV label columns → floats 1/0/−1/NaN; SourceFormatError naming ``source`` otherwise."""
    values = table.apply(lambda column: pd.to_numeric(column, errors="coerce"))
    bad = values.isna() & table.notna() & (table.astype(str).apply(lambda c: c.str.strip()) != "")
    if bad.any().any():
        column = bad.any().idxmax()
        example = table.loc[bad[column], column].iloc[0]
        raise SourceFormatError(
            f"{source}: column {column!r} holds {example!r}; expected 1, 0, -1 or blank"
        )
    unknown = values.notna() & ~values.isin((POSITIVE, NEGATIVE, UNCERTAIN))
    if unknown.any().any():
        column = unknown.any().idxmax()
        example = values.loc[unknown[column], column].iloc[0]
        raise SourceFormatError(
            f"{source}: column {column!r} holds {example:g}; expected 1, 0, -1 or blank"
        )
    return values.astype(float)


# precedence when views or rows of one study disagree: positive > uncertain > negative > missing
_RANK = {POSITIVE: 3, UNCERTAIN: 2, NEGATIVE: 1}
_FROM_RANK = {3: POSITIVE, 2: UNCERTAIN, 1: NEGATIVE, 0: np.nan}


def combine_per_study(raw: pd.DataFrame, study: Iterable) -> pd.DataFrame:
    """One row per study from per-image raw labels: the strongest statement wins (positive over
    uncertain over negative over missing). Indexed by study, sorted."""
    ranks = raw.apply(lambda c: c.map(_RANK)).fillna(0).astype(int)
    best = ranks.groupby(list(study), sort=True).max()
    return best.apply(lambda c: c.map(_FROM_RANK)).astype(float)


def apply_policy(raw: pd.DataFrame, uncertain: LabelPolicy, missing: LabelPolicy) -> pd.DataFrame:
    """Training targets 1/0/NaN from raw 1/0/−1/NaN: uncertain and missing values become NaN
    (``ignore``: masked), 0 (``zeros``) or 1 (``ones``)."""
    replacement = {"ignore": np.nan, "zeros": NEGATIVE, "ones": POSITIVE}
    for name, policy in (("uncertain", uncertain), ("missing", missing)):
        if policy not in replacement:
            raise ValueError(f"{name} policy must be ignore, zeros or ones, got {policy!r}")
    targets = raw.mask(raw == UNCERTAIN, replacement[uncertain])
    return targets.mask(raw.isna(), replacement[missing]).astype(float)


def diseased_from_findings(raw: pd.DataFrame) -> pd.Series:
    """Normal (0) vs diseased (1): diseased when any finding but No Finding and Support Devices is
    positive or uncertain — the complement of the CheXpert labeler's No Finding rule."""
    disease = [c for c in raw.columns if c not in NOT_DISEASE]
    return raw[disease].isin((POSITIVE, UNCERTAIN)).any(axis=1).astype(int)


def finding_counts(raw: pd.DataFrame, targets: pd.DataFrame, split: pd.Series) -> dict:
    """Per finding: raw positive/negative/uncertain/missing counts, and per split the positives,
    negatives and masked targets (what the heads and the metrics will see). JSON-ready."""
    counts = {}
    for name in raw.columns:
        column, target = raw[name], targets[name]
        counts[name] = {
            "positive": int((column == POSITIVE).sum()),
            "negative": int((column == NEGATIVE).sum()),
            "uncertain": int((column == UNCERTAIN).sum()),
            "missing": int(column.isna().sum()),
            "splits": {
                part: {
                    "positive": int((target[split == part] == POSITIVE).sum()),
                    "negative": int((target[split == part] == NEGATIVE).sum()),
                    "masked": int(target[split == part].isna().sum()),
                }
                for part in SPLITS
                if (split == part).any()
            },
        }
    return counts
