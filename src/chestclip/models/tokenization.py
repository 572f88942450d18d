"""Tokenizers: a pretrained one by name or path, or a BERT-style WordPiece trained on the reports.

Training is for text encoders without a tokenizer of their own (the tiny presets); pretrained
encoders always use the tokenizer they were trained with.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def load_tokenizer(name_or_path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """The tokenizer saved with a Hugging Face model or in a local directory."""
    return AutoTokenizer.from_pretrained(str(name_or_path))


def train_wordpiece_tokenizer(
    texts: Iterable[str], vocab_size: int = 2000
) -> PreTrainedTokenizerFast:
    """A lower-casing BERT WordPiece tokenizer (``[CLS] text [SEP]``) built from ``texts``.

    Vocabulary: the special tokens, every character seen (alone and as a ``##`` continuation, so
    no word is ever unknown) and the most frequent words, ties broken alphabetically. Built by
    hand because ``tokenizers``' WordPieceTrainer orders equal counts by hash-map iteration: two
    processes trained on the same texts get different vocabularies, hence different models from
    the same seed. The vocabulary may come out smaller than ``vocab_size``; size the text encoder
    with ``len(tokenizer)``.
    """
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        words = pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
        counts.update(word for word, _ in words)
    alphabet = sorted({char for word in counts for char in word})
    vocab = [*SPECIAL_TOKENS, *alphabet, *(f"##{char}" for char in alphabet)]
    known = set(vocab)
    by_frequency = sorted(counts, key=lambda word: (-counts[word], word))
    vocab += [w for w in by_frequency if w not in known][: max(0, vocab_size - len(vocab))]
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
