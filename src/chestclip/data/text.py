"""Report text: choose fields, then clean them the way the paper did (or more safely)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Literal

import pandas as pd

from chestclip.data.records import SECTIONS
from chestclip.errors import ChestClipError

CleanMode = Literal["safe", "paper", "none"]

# Negations the NLTK list deletes: without them "no pneumothorax" reads as "pneumothorax".
# After special characters are removed, "isn't" is the token "isn", so the stems are kept too.
NEGATIONS = frozenset(
    [
        "no",
        "nor",
        "not",
        "ain",
        "aren",
        "couldn",
        "didn",
        "doesn",
        "don",
        "hadn",
        "hasn",
        "haven",
        "isn",
        "mightn",
        "mustn",
        "needn",
        "shan",
        "shouldn",
        "wasn",
        "weren",
        "won",
        "wouldn",
    ]
)

# "N year old", with IU X-Ray's "XXXX" or MIMIC-CXR's "___" for the de-identified number
_AGE = re.compile(r"(?:\b\d+|\bx+|_+)[\s-]*(?:years?|yrs?|yo)[\s-]*old\b")
_SPECIAL = re.compile(r"[^a-z0-9\s]")
_DEIDENTIFIED = re.compile(r"^x+$")


@cache
def nltk_stopwords() -> frozenset[str]:
    """NLTK's English stop-word list, shipped as package data (its downloader needs internet)."""
    text = resources.files("chestclip.resources").joinpath("stopwords_english.txt").read_text()
    return frozenset(w for w in text.split("\n") if w and not w.startswith("#"))


def clean_text(text: str, mode: CleanMode = "safe") -> str:
    """Clean one report text.

    ``paper``: lowercase, drop "N year old" mentions, drop special characters, drop NLTK English
    stop words and the de-identification tokens ``x``/``XXXX``. ``safe``: the same but negations
    are kept. ``none``: whitespace normalised only.
    """
    if mode == "none":
        return " ".join(text.split())
    if mode not in ("safe", "paper"):
        raise ValueError(f"unknown cleaning mode {mode!r}: expected safe, paper or none")
    stop = nltk_stopwords() - NEGATIONS if mode == "safe" else nltk_stopwords()
    text = _SPECIAL.sub(" ", _AGE.sub(" ", text.lower()))
    return " ".join(t for t in text.split() if t not in stop and not _DEIDENTIFIED.match(t))


def negation_words(text: str) -> frozenset[str]:
    """The negations ``text`` says ("no", "not", "isn", ...), whatever its case or punctuation."""
    return frozenset(_SPECIAL.sub(" ", text.lower()).split()) & NEGATIONS


def join_fields(row: pd.Series | Mapping[str, str], fields: tuple[str, ...]) -> str:
    """Concatenate the chosen report sections, each ended as a sentence."""
    parts = []
    for field in fields:
        value = str(row.get(field, "") or "").strip()
        if value:
            parts.append(value if value[-1] in ".!?" else value + ".")
    return " ".join(parts)


def section_text(text: str, mode: CleanMode) -> str:
    """A section typed at prediction time (an indication, a report) built exactly as training
    built its texts: ended as a sentence by :func:`join_fields`, then cleaned. Under ``none``
    cleaning the full stop is part of the text the model saw."""
    return clean_text(join_fields({"section": text}, ("section",)), mode)


def build_text(reports: pd.DataFrame, fields: tuple[str, ...], mode: CleanMode) -> pd.Series:
    """The model's text per report: the chosen fields concatenated, then cleaned."""
    unknown = set(fields) - set(SECTIONS)
    if unknown:
        raise ChestClipError(
            f"unknown text field(s) {', '.join(sorted(unknown))}: expected {', '.join(SECTIONS)}"
        )
    return reports.apply(lambda row: clean_text(join_fields(row, fields), mode), axis=1)
