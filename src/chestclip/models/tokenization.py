"""Tokenizers: a pretrained one by name or path, or a BERT-style WordPiece trained on the reports.

Training is for text encoders without a tokenizer of their own (the tiny presets); pretrained
encoders always use the tokenizer they were trained with.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def load_tokenizer(name_or_path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """The tokenizer saved with a Hugging Face model or in a local directory."""
    return AutoTokenizer.from_pretrained(str(name_or_path))


def train_wordpiece_tokenizer(
    texts: Iterable[str], vocab_size: int = 2000
) -> PreTrainedTokenizerFast:
    """Train a lower-casing BERT WordPiece tokenizer (``[CLS] text [SEP]``) on ``texts``.

    The vocabulary may come out smaller than ``vocab_size`` on a small corpus; size the text
    encoder with ``len(tokenizer)``.
    """
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS))
    tokenizer.train_from_iterator(texts, trainer=trainer)
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
