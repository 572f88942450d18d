"""Normal (0) vs diseased (1) from the report's MeSH terms or Problems field."""

from __future__ import annotations

NORMAL, DISEASED = 0, 1
NOT_INDEXED = "no indexing"  # the indexers' term for a report they did not index


class UnlabelledReport(ValueError):
    """A report whose terms carry no label: MeSH "No Indexing"."""


def label_from_terms(terms: list[str]) -> int:
    """0 when every term equals "normal" (case-insensitive), else 1.

    No terms → ValueError. A "No Indexing" term → UnlabelledReport: the report was never
    indexed, which says nothing about the X-ray, and "not normal" would read it as diseased (95
    reports of the OpenI collection, 92 of them with images).
    """
    cleaned = [t.strip().lower() for t in terms if t and t.strip()]
    if not cleaned:
        raise ValueError("no MeSH/Problems terms")
    if NOT_INDEXED in cleaned:
        raise UnlabelledReport('not indexed: MeSH "No Indexing" gives no normal/diseased label')
    return NORMAL if all(t == "normal" for t in cleaned) else DISEASED


def problems_from_mesh(mesh_terms: list[str]) -> list[str]:
    """Kaggle's Problems field: the first '/'-component of each MeSH term."""
    return [t.split("/")[0].strip() for t in mesh_terms if t.strip()]
