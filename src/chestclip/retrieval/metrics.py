"""Image↔report retrieval: Recall@K, median rank and the chance level, identical reports aware.

IU X-Ray holds many word-for-word identical (normal) reports, so a retrieved report counts as a
hit when its cleaned text equals the query's own report, and each distinct text is one
candidate: image→report ranks the DISTINCT reports; report→image asks, for each distinct report,
how soon ANY image whose report reads the same comes up.

Ties count against the query (a candidate as similar as the best hit ranks before it), so a
collapsed model that embeds everything alike scores at the bottom, not at the top.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from chestclip.retrieval.index import EmbeddingIndex

KS: tuple[int, ...] = (1, 5, 10)
_MAX_SIMILARITY_CELLS = 16_000_000  # [query chunk, candidates] float32 ≈ 64 MB at once


@torch.no_grad()
def first_hit_ranks(
    queries: np.ndarray, candidates: np.ndarray, relevant: np.ndarray
) -> np.ndarray:
    """1-based rank of each query's best relevant candidate: int64 [Q].

    ``queries`` [Q, D] and ``candidates`` [C, D] are unit-norm embeddings; ``relevant`` [Q, C]
    marks the hits (at least one per query). The rank is 1 + the number of irrelevant
    candidates at least as similar as the best hit.
    """
    relevant = torch.as_tensor(np.asarray(relevant, dtype=bool))
    if relevant.shape != (len(queries), len(candidates)):
        raise ValueError(
            f"relevant must be [{len(queries)}, {len(candidates)}], got {relevant.shape}"
        )
    if not bool(relevant.any(dim=1).all()):
        raise ValueError("every query needs at least one relevant candidate")
    query_t = torch.as_tensor(np.asarray(queries, dtype=np.float32))
    candidate_t = torch.as_tensor(np.asarray(candidates, dtype=np.float32))
    chunk = max(1, _MAX_SIMILARITY_CELLS // max(1, len(candidates)))
    ranks = []
    for start in range(0, len(queries), chunk):
        similarity = query_t[start : start + chunk] @ candidate_t.T  # [chunk, C]
        hits = relevant[start : start + chunk]
        best_hit = similarity.masked_fill(~hits, -torch.inf).amax(dim=1, keepdim=True)
        ranks.append(1 + ((similarity >= best_hit) & ~hits).sum(dim=1))
    return torch.cat(ranks).numpy().astype(np.int64)


def chance_recall(n_relevant: np.ndarray, n_candidates: int, k: int) -> float:
    """Expected Recall@K of a uniformly random ranking: the mean over queries of
    1 − C(n − r, k) / C(n, k) for r relevant of n candidates; exactly k/n when every r is 1."""
    r = np.asarray(n_relevant, dtype=float)[:, None]
    drawn = np.arange(min(k, n_candidates))
    miss_all = np.clip((n_candidates - r - drawn) / (n_candidates - drawn), 0.0, None).prod(axis=1)
    return float(np.mean(1.0 - miss_all))


def _summarise_ranks(
    ranks: np.ndarray, n_relevant: np.ndarray, n_candidates: int, ks: Sequence[int]
) -> dict[str, Any]:
    """``recall@K`` and ``chance@K`` per K, ``median_rank`` and the sizes, JSON-ready."""
    summary: dict[str, Any] = {"n_queries": len(ranks), "n_candidates": n_candidates}
    for k in ks:
        summary[f"recall@{k}"] = float(np.mean(ranks <= k))
        summary[f"chance@{k}"] = chance_recall(n_relevant, n_candidates, k)
    summary["median_rank"] = float(np.median(ranks))
    return summary


def retrieval_metrics(
    image_embeddings: np.ndarray,
    image_texts: Sequence[Hashable],
    report_embeddings: np.ndarray,
    report_texts: Sequence[Hashable],
    ks: Sequence[int] = KS,
) -> dict[str, dict[str, Any]]:
    """Both retrieval directions on one split.

    ``image_embeddings`` [N, D] with each image's report key ``image_texts`` [N];
    ``report_embeddings`` [M, D] with ``report_texts`` [M] (one per study; identical texts are
    merged into one candidate). Keys are the cleaned texts or any id equal for identical texts
    (``text_index``). Returns ``{"image_to_report": {...}, "report_to_image": {...}}``, each with
    ``recall@K``, ``chance@K`` (a random ranking's expected recall), ``median_rank``,
    ``n_queries`` and ``n_candidates``.
    """
    if len(image_texts) == 0 or len(report_texts) == 0:
        raise ValueError("retrieval needs at least one image and one report")
    keys, distinct_keys = pd.factorize(pd.Series([*report_texts, *image_texts], dtype=object))
    report_keys, image_keys = keys[: len(report_texts)], keys[len(report_texts) :]
    missing = sorted(set(image_keys) - set(report_keys))
    if missing:
        raise ValueError(
            f"images whose report is not among the reports, e.g. {distinct_keys[missing[0]]!r}"
        )
    first = pd.Series(report_keys).drop_duplicates()  # one candidate per distinct text
    distinct_reports = np.asarray(report_embeddings)[first.index.to_numpy()]
    # [N_images, M_distinct]: the one candidate that reads like the image's own report
    same_text = image_keys[:, None] == first.to_numpy()[None, :]
    with_images = same_text.any(axis=0)  # a report without images is a candidate, not a query

    image_ranks = first_hit_ranks(image_embeddings, distinct_reports, same_text)
    report_ranks = first_hit_ranks(
        distinct_reports[with_images], image_embeddings, same_text.T[with_images]
    )
    return {
        "image_to_report": _summarise_ranks(
            image_ranks, np.ones(len(image_ranks)), len(distinct_reports), ks
        ),
        "report_to_image": _summarise_ranks(
            report_ranks, same_text.sum(axis=0)[with_images], len(image_keys), ks
        ),
    }


def evaluate_retrieval(index: EmbeddingIndex, ks: Sequence[int] = KS) -> dict[str, Any]:
    """:func:`retrieval_metrics` on an index's split, reports keyed by their cleaned text."""
    return {
        "split": index.split,
        **retrieval_metrics(
            index.image_embeddings,
            index.image_texts.tolist(),
            index.text_embeddings,
            index.studies["text"].tolist(),
            ks,
        ),
    }
