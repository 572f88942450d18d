"""Shared fixtures for chestclip.models tests: a small report corpus and its tokenizer."""

from __future__ import annotations

import socket

import pytest
from transformers import PreTrainedTokenizerFast

from chestclip.models import train_wordpiece_tokenizer

REPORTS = [
    "No acute cardiopulmonary abnormality.",
    "The heart is normal in size. The lungs are clear.",
    "Small right pleural effusion. No pneumothorax.",
    "Cardiomegaly with mild pulmonary vascular congestion.",
    "Left lower lobe opacity, possibly atelectasis or pneumonia.",
    "Degenerative changes of the thoracic spine. No focal consolidation.",
]


@pytest.fixture(scope="session")
def reports() -> list[str]:
    return list(REPORTS)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return train_wordpiece_tokenizer(REPORTS * 5, vocab_size=300)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub and no network: HF_HUB_OFFLINE=1, and any socket connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted in an offline test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
