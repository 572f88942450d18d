"""Free-text radiology reports (MIMIC-CXR's ``sNNNNNNNN.txt``, a hospital export) → sections.

A report is a preamble ("FINAL REPORT", sometimes "WET READ: ..." and the examination title)
followed by sections that start on a new line with an upper-case header and a colon
("INDICATION:", "FINDINGS:", "IMPRESSION:"), their text wrapped over several lines. Headers are
normalised the way MIMIC-CXR's own section parser (MIT-LCP/mimic-cxr, ``section_parser.py``)
groups them: "REASON FOR EXAM", "HISTORY" and "CLINICAL HISTORY" are the indication,
"CONCLUSION" and "FINDINGS AND IMPRESSION" the impression. Hand-written: no maintained library
parses report sections, and that script is not packaged.
"""

from __future__ import annotations

import re

from chestclip.data.records import SECTIONS

# a header at the start of a line: upper-case words (with spaces, /, (), comma, hyphen), a colon
_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z ()/,&-]*[A-Z)])[ \t]*:", re.MULTILINE)
_SECTION_OF = {
    "indication": "indication",
    "indications": "indication",
    "clinical indication": "indication",
    "reason for exam": "indication",
    "reason for examination": "indication",
    "history": "indication",
    "clinical history": "indication",
    "clinical information": "indication",
    "patient history": "indication",
    "comparison": "comparison",
    "comparisons": "comparison",
    "comparison exam": "comparison",
    "findings": "findings",
    "finding": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "findings and impression": "impression",
    "findings/impression": "impression",
}
_VIEW_TITLE = re.compile(r"\b(chest|views?|portable|pa and lat(eral)?|ap and lat(eral)?)\b")


def parse_report_text(text: str) -> dict[str, str]:
    """Sections (``indication``, ``comparison``, ``findings``, ``impression``) of a report.

    Each is its text with line wraps joined into single spaces; a section the report lacks is "".
    Several headers mapping to one section (INDICATION and HISTORY) are joined in report order.
    Unknown headers (EXAMINATION, TECHNIQUE, NOTIFICATION, ...) and the preamble are dropped. A
    report without any known header is returned whole as its findings.
    """
    sections = dict.fromkeys(SECTIONS, "")
    headers = list(_HEADER.finditer(text))
    known = [(m, section_of(m.group(1))) for m in headers]
    if not any(name for _, name in known):
        sections["findings"] = _join_lines(text)
        return sections
    for index, (match, name) in enumerate(known):
        if name is None:
            continue
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        body = _join_lines(text[match.end() : end])
        if body:
            sections[name] = f"{sections[name]} {body}".strip()
    return sections


def section_of(header: str) -> str | None:
    """The section a header names, or None; like MIMIC-CXR's parser, a header describing the
    views ("CHEST, PA AND LATERAL", "PORTABLE AP VIEW") introduces the findings."""
    name = " ".join(header.lower().split())
    if name in _SECTION_OF:
        return _SECTION_OF[name]
    return "findings" if _VIEW_TITLE.search(name) else None


def _join_lines(text: str) -> str:
    return " ".join(text.split())
