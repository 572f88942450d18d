"""Zero-shot classification and image↔report retrieval on a trained ChestCLIP.

Typical use::

    layout = RunLayout(run)
    model, tokenizer = load_clip(run, "cuda")
    data = PreparedData(prepared_dir)
    results = evaluate_zero_shot(model, tokenizer, data, load_prompts(), split="test")
    index = build_index(model, tokenizer, data, "test")
    index.save(layout.retrieval_index("test"))
    print(evaluate_retrieval(index)["image_to_report"]["recall@5"])
    drafts = nearest_reports(EmbeddingIndex.load(layout.retrieval_index("train")), embedding)
"""

from chestclip.retrieval.index import (
    EmbeddingIndex,
    EmbeddingIndexError,
    build_index,
    nearest_reports,
)
from chestclip.retrieval.metrics import (
    chance_recall,
    evaluate_retrieval,
    first_hit_ranks,
    retrieval_metrics,
)
from chestclip.retrieval.prompts import PromptError, PromptSet, PromptTask, load_prompts
from chestclip.retrieval.zeroshot import (
    ensemble_embedding,
    evaluate_zero_shot,
    pair_probability,
    prompt_embeddings,
    split_table,
    task_labels,
    zero_shot_auc,
    zero_shot_scores,
)

__all__ = [
    "EmbeddingIndex",
    "EmbeddingIndexError",
    "PromptError",
    "PromptSet",
    "PromptTask",
    "build_index",
    "chance_recall",
    "ensemble_embedding",
    "evaluate_retrieval",
    "evaluate_zero_shot",
    "first_hit_ranks",
    "load_prompts",
    "nearest_reports",
    "pair_probability",
    "prompt_embeddings",
    "retrieval_metrics",
    "split_table",
    "task_labels",
    "zero_shot_auc",
    "zero_shot_scores",
]
