"""Which anatomical zones (``roi.ZONES``) a radiology report mentions, and how much of a heat map
falls in them.

A lexicon of location and finding phrases maps to zones; a NegEx-style rule (Chapman et al. 2001)
drops negated mentions. Hand-written because no maintained, offline English NegEx package fits our
dependencies (negspacy needs spaCy and a downloaded model). The rule, per sentence:

- a mention is negated when a negation cue (``no``, ``without``, ``negative for``, ``free of``...)
  precedes it within ``PRE_WINDOW`` words, or lies inside the phrase itself ("heart is NOT
  enlarged"), or a post-negation cue ("... has resolved", "... is clear") follows within
  ``POST_WINDOW`` words;
- a termination term (``but``, ``however``, ``there is``...) ends a cue's scope;
- pseudo-negations ("no interval change", "not significantly changed") are not cues.

Sides are the patient's. A finding with no side ("pleural effusion") maps to no zone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

PRE_WINDOW = 8  # words between a negation cue and the mention it negates
POST_WINDOW = 4
SIDES = {
    "right": ("right",),
    "left": ("left",),
    "both": ("right", "left"),
    "bilateral": ("right", "left"),
    "bilaterally": ("right", "left"),
}


@dataclass(frozen=True)
class Phrase:
    """A lexicon entry: a regex (on lower-cased text, hyphens as spaces) and its zones. A zone
    written ``{side}_...`` takes its side(s) from the regex's ``side`` group."""

    pattern: re.Pattern[str]
    zones: tuple[str, ...]

    def zones_of(self, match: re.Match[str]) -> tuple[str, ...]:
        sides = SIDES[match.group("side")] if "side" in self.pattern.groupindex else ()
        return tuple(zone.format(side=side) for zone in self.zones for side in (sides or (None,)))


def _phrase(regex: str, *zones: str) -> Phrase:
    return Phrase(re.compile(rf"\b(?:{regex})\b"), zones)


_WORDS = r"(?: \w+){0,2}"
_BE = r"(?:is|are|was|appears?|remains?)"
_CP = r"(?: lateral| posterior)? costophrenic"
LEXICON: tuple[Phrase, ...] = (
    # lung zones by location
    _phrase(
        r"(?P<side>right|left) (?:lung )?(?:upper (?:lobe|lung|zone|field)s?|apex|apices|apical)",
        "{side}_upper",
    ),
    _phrase(r"ap(?:ex|ices) of the (?P<side>right|left) lung", "{side}_upper"),
    _phrase(
        r"biapical|(?:both|bilateral) (?:apices|apical|upper (?:lobes|lungs|zones))",
        "right_upper",
        "left_upper",
    ),
    _phrase(r"right middle lobe", "right_middle"),
    _phrase(
        r"(?P<side>right|left) (?:mid ?lung|mid(?:dle)? (?:lung )?(?:zone|field))s?",
        "{side}_middle",
    ),
    _phrase(r"lingular?", "left_middle"),
    _phrase(
        r"(?P<side>right|left) (?:lung )?"
        r"(?:lower (?:lobe|lung|zone|field)s?|bases?|basilar|basal|basis|infrahilar)",
        "{side}_lower",
    ),
    _phrase(r"bases? of the (?P<side>right|left) lung", "{side}_lower"),
    _phrase(r"retrocardiac", "left_lower"),
    _phrase(
        r"bibasilar|bibasal|bibasally|(?:both|bilateral) (?:lung )?"
        r"(?:bases|basilar|basal|lower (?:lobes|lungs|zones))",
        "right_lower",
        "left_lower",
    ),
    # heart and mediastinum
    _phrase(
        r"cardiomegaly|cardiac enlargement|enlarged (?:heart|cardiac (?:silhouette|shadow))"
        r"|enlargement of the (?:heart|cardiac (?:silhouette|shadow))",
        "cardiac_silhouette",
    ),
    _phrase(
        rf"(?:heart|cardiac (?:silhouette|shadow|size)){_WORDS} {_BE}{_WORDS} enlarged",
        "cardiac_silhouette",
    ),
    _phrase(
        rf"(?:cardiomediastinal silhouette{_WORDS} {_BE}{_WORDS} enlarged"
        r"|enlarged cardiomediastinal silhouette)",
        "cardiac_silhouette",
        "mediastinum",
    ),
    _phrase(
        r"mediastinal (?:widening|mass|shift)|widen(?:ed|ing) (?:of the )?(?:superior )?"
        rf"mediastinum|mediastinum{_WORDS} {_BE}{_WORDS} (?:widened|wide)",
        "mediastinum",
    ),
    # pleura: an effusion with a side, or a blunted costophrenic angle
    _phrase(
        rf"(?P<side>right|left|both|bilateral)(?: sided)?{_WORDS} (?:pleural )?effusions?",
        "{side}_costophrenic",
    ),
    _phrase(
        r"(?:pleural )?effusions?(?: \w+){0,3} (?:on|at|in) the (?P<side>right|left)",
        "{side}_costophrenic",
    ),
    _phrase(
        r"(?:pleural )?effusions?(?: (?:are|is|seen|present))* (?P<side>bilaterally)",
        "{side}_costophrenic",
    ),
    _phrase(
        rf"blunt(?:ing|ed) of (?:the )?(?P<side>right|left|both|bilateral){_CP}",
        "{side}_costophrenic",
    ),
    _phrase(
        rf"(?P<side>right|left|both|bilateral){_CP} (?:angles? |sulcus |sulci |recess(?:es)? )?"
        r"(?:(?:is|are) )?blunt(?:ing|ed)",
        "{side}_costophrenic",
    ),
)

PRE_NEGATION = re.compile(
    r"\b(?:no|not|without|negative for|free of|clear of|absence of|absent|nor|neither"
    r"|rule out|resolution of|resolved)\b"
)
POST_NEGATION = re.compile(
    r"\b(?:(?:is|are|has|have) (?:now )?(?:clear|normal|unremarkable|absent)|resolved|cleared"
    r"|not (?:seen|identified|present)|ruled out|excluded|unlikely)\b"
)
PSEUDO_NEGATION = re.compile(
    r"\bno (?:significant |substantial |definite |appreciable )?(?:interval )?"
    r"(?:change|increase|decrease|worsening|improvement)\b"
    r"|\bnot (?:significantly |substantially )?(?:changed|increased|decreased|only)\b"
    r"|\bwithout (?:significant |interval )*change\b"
    r"|\bnot (?:seen|identified|visible) (?:on|in) (?:the )?(?:prior|previous)"
)
TERMINATION = re.compile(
    r"\b(?:but|however|although|though|except|aside from|apart from|yet|whereas|which"
    r"|there (?:is|are))\b"
)
_SENTENCE_END = re.compile(r"(?<!\d)[.;:!?](?!\d)|\n")


@dataclass(frozen=True)
class Mention:
    """One lexicon match: the zones it names, the matched text, its sentence, whether negated."""

    zones: tuple[str, ...]
    phrase: str
    sentence: str
    negated: bool


def sentences(text: str) -> list[str]:
    """Lower-cased sentences, hyphens as spaces ("right-sided" → "right sided")."""
    parts = _SENTENCE_END.split(text.lower())
    return [" ".join(part.replace("-", " ").split()) for part in parts if part.strip()]


def _after_last(pattern: re.Pattern[str], text: str) -> str:
    ends = [match.end() for match in pattern.finditer(text)]
    return text[ends[-1] :] if ends else text


def _before_first(pattern: re.Pattern[str], text: str) -> str:
    first = pattern.search(text)
    return text if first is None else text[: first.start()]


def is_negated(sentence: str, start: int, end: int) -> bool:
    """Whether the mention ``sentence[start:end]`` is negated (see the module docstring)."""
    unmasked = PSEUDO_NEGATION.sub(lambda m: " " * len(m.group()), sentence)
    before = _after_last(TERMINATION, unmasked[:start])
    window = " ".join(before.split()[-PRE_WINDOW:])
    if PRE_NEGATION.search(window) or PRE_NEGATION.search(unmasked[start:end]):
        return True
    after = " ".join(_before_first(TERMINATION, unmasked[end:]).split()[:POST_WINDOW])
    return POST_NEGATION.search(after) is not None


def find_mentions(text: str) -> list[Mention]:
    """Every lexicon match in ``text``, negated or not, sentence by sentence."""
    mentions = []
    for sentence in sentences(text):
        for phrase in LEXICON:
            for match in phrase.pattern.finditer(sentence):
                mentions.append(
                    Mention(
                        phrase.zones_of(match),
                        match.group(),
                        sentence,
                        is_negated(sentence, match.start(), match.end()),
                    )
                )
    return mentions


def mentioned_zones(text: str) -> set[str]:
    """Zones the report mentions affirmatively (negated mentions do not count)."""
    return {zone for m in find_mentions(text) if not m.negated for zone in m.zones}


def agreement(masses: Mapping[str, float], zones: Collection[str]) -> float:
    """The heat map's mass inside the mentioned ``zones`` (``zone_masses`` output): 1 when all
    of it lies where the report points. NaN when the report mentions no zone (nothing to agree
    with) or the heat map had no mass."""
    missing = sorted(set(zones) - set(masses))
    if missing:
        raise ValueError(f"zones {missing} have no mass: the masks did not include them")
    if not zones:
        return math.nan
    return float(sum(masses[zone] for zone in zones))
