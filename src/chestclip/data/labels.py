"""Normal (0) vs diseased (1) from the report's MeSH terms or Problems field."""

from __future__ import annotations

NORMAL, DISEASED = 0, 1


def label_from_terms(terms: list[str]) -> int:
    """0 when every term equals "normal" (case-insensitive), else 1. No terms → ValueError."""
    cleaned = [t.strip().lower() for t in terms if t and t.strip()]
    if not cleaned:
        raise ValueError("no MeSH/Problems terms")
    return NORMAL if all(t == "normal" for t in cleaned) else DISEASED


def problems_from_mesh(mesh_terms: list[str]) -> list[str]:
    """Kaggle's Problems field: the first '/'-component of each MeSH term."""
    return [t.split("/")[0].strip() for t in mesh_terms if t.strip()]
