"""Report text and MeSH terms of a phantom study, in the style of the IU X-Ray reports.

The text names every drawn finding with its patient side and lobe, the same side the lesion is
drawn on (patient's right = image's left). Normal reports come mostly from a few fixed templates,
so many are word for word identical as in the real archive; ``XXXX`` stands for the archive's
de-identification token. The indication is only weakly related to the label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chestclip.phantom.findings import Finding

# (text, weight in normal studies, weight in abnormal studies)
INDICATIONS = (
    ("preoperative exam", 4.0, 1.0),
    ("routine physical", 3.0, 0.7),
    ("positive TB test", 2.5, 1.0),
    ("chest pain", 3.0, 2.5),
    ("cough and fever", 1.0, 4.0),
    ("shortness of breath", 1.5, 3.5),
    ("dyspnea", 1.0, 2.5),
    ("follow-up of abnormal chest x-XXXX", 0.5, 2.0),
    ("hypertension", 1.5, 1.0),
    ("XXXX", 1.5, 1.5),
)
COMPARISONS = (
    ("None.", 4.0),
    ("", 3.0),
    ("XXXX, XXXX.", 2.0),
    ("None available.", 1.0),
    ("Chest x-XXXX dated XXXX.", 1.0),
    ("XXXX", 1.0),
)
CAPTIONS = {
    True: (("Xray Chest PA and Lateral", 8.0), ("CHEST 2V FRONTAL/LATERAL", 1.0)),
    False: (("Xray Chest PA", 8.0), ("CHEST 1V FRONTAL", 1.0)),
}
NORMAL_FINDINGS = (
    ("The heart is normal in size. The mediastinum is unremarkable. The lungs are clear.", 4.0),
    (
        "Heart size and mediastinal contour are within normal limits. The lungs are clear. "
        "No pneumothorax or pleural effusion.",
        4.0,
    ),
    (
        "The cardiomediastinal silhouette is within normal limits. The lungs are clear without "
        "focal consolidation. No pleural effusion or pneumothorax. Visualized XXXX of the chest "
        "are intact.",
        3.0,
    ),
    ("Normal heart size. Clear lungs. No effusion or pneumothorax.", 2.0),
)
NORMAL_IMPRESSIONS = (
    ("No acute cardiopulmonary abnormality.", 4.0),
    ("No active disease.", 2.0),
    ("Normal chest x-XXXX.", 2.0),
    ("No acute cardiopulmonary disease.", 2.0),
)
# normal sentences by topic, in reading order; a finding replaces the topics it contradicts
NORMAL_SENTENCES = {
    "heart": (
        "Heart size and mediastinal contour are within normal limits.",
        "The heart is normal in size.",
        "The cardiomediastinal silhouette is within normal limits.",
    ),
    "lungs": ("The lungs are clear.", "Lungs are clear bilaterally.", "No focal consolidation."),
    "effusion": ("No pleural effusion.", "There are no XXXX of a pleural effusion."),
    "pneumothorax": ("No pneumothorax.", "There is no evidence of pneumothorax."),
    "bones": ("The osseous structures are intact.", "Visualized XXXX of the chest are intact."),
}
CONTRADICTS = {
    "cardiomegaly": ("heart",),
    "effusion": ("effusion", "lungs"),
    "opacity": ("lungs",),
    "nodule": ("lungs",),
}
TOPIC_OF = {"cardiomegaly": "heart", "effusion": "effusion", "opacity": "lungs", "nodule": "lungs"}
EMPTY_FINDINGS_FRACTION = 0.05
NORMAL_TEMPLATE_FRACTION = 0.75


@dataclass(frozen=True)
class Report:
    """The report sections and MeSH major terms of one study."""

    indication: str
    comparison: str
    findings: str
    impression: str
    mesh: tuple[str, ...]
    caption: str


def problems(mesh: tuple[str, ...]) -> tuple[str, ...]:
    """Kaggle ``Problems``: the first '/'-component of each MeSH term (``normal`` stays)."""
    return tuple(term.split("/")[0] for term in mesh)


def write_report(
    findings: tuple[Finding, ...], has_lateral: bool, rng: np.random.Generator
) -> Report:
    """Write the report of a study with ``findings`` (empty: a normal study)."""
    abnormal = bool(findings)
    weights = np.array([w[2] if abnormal else w[1] for w in INDICATIONS])
    indication = _indication(
        INDICATIONS[rng.choice(len(INDICATIONS), p=weights / weights.sum())][0], rng
    )
    comparison = _pick(COMPARISONS, rng)
    caption = _pick(CAPTIONS[has_lateral], rng)
    described = [_describe(finding, rng) for finding in findings]
    if not abnormal and rng.random() < NORMAL_TEMPLATE_FRACTION:
        text = _pick(NORMAL_FINDINGS, rng)
    else:
        text = _compose(findings, [sentence for sentence, _, _ in described], rng)
    if rng.random() < EMPTY_FINDINGS_FRACTION:
        text = ""
    if abnormal:
        phrases = [phrase for _, phrase, _ in described]
        numbered = len(phrases) > 1 and rng.random() < 0.5
        impression = " ".join(
            f"{i}. {phrase}" if numbered else phrase for i, phrase in enumerate(phrases, 1)
        )
        mesh = tuple(term for _, _, term in described)
    else:
        impression, mesh = _pick(NORMAL_IMPRESSIONS, rng), ("normal",)
    return Report(indication, comparison, text, impression, mesh, caption)


def _pick(options: tuple[tuple[str, float], ...], rng: np.random.Generator) -> str:
    """One text of ``(text, weight)`` options, drawn by weight."""
    weights = np.array([weight for _, weight in options])
    return options[rng.choice(len(options), p=weights / weights.sum())][0]


def _indication(reason: str, rng: np.random.Generator) -> str:
    """The indication in one of the archive's phrasings, often with an age/sex prefix."""
    style = rng.integers(4)
    if style == 0 or reason == "XXXX":
        return reason[0].upper() + reason[1:]
    if style == 1:
        return reason[0].upper() + reason[1:] + "."
    sex = str(rng.choice(("male", "female", "XXXX")))
    return f"XXXX-year-old {sex} with {reason}" + ("." if style == 2 else "")


def _compose(findings: tuple[Finding, ...], sentences: list[str], rng: np.random.Generator) -> str:
    """Findings text: finding sentences in their topic's place, normal sentences elsewhere."""
    contradicted = {topic for finding in findings for topic in CONTRADICTS[finding.kind]}
    by_topic: dict[str, list[str]] = {topic: [] for topic in NORMAL_SENTENCES}
    for finding, sentence in zip(findings, sentences, strict=True):
        by_topic[TOPIC_OF[finding.kind]].append(sentence)
    for topic, options in NORMAL_SENTENCES.items():
        if topic not in contradicted and rng.random() < 0.85:
            by_topic[topic].append(str(options[rng.integers(len(options))]))
    return " ".join(sentence for topic in NORMAL_SENTENCES for sentence in by_topic[topic])


def _describe(finding: Finding, rng: np.random.Generator) -> tuple[str, str, str]:
    """(findings sentence, impression phrase, MeSH term) naming the finding and its side."""
    side, lobe, severity = finding.side, f"{finding.zone} lobe", finding.severity

    def choose(*options: str) -> str:
        """One of ``options``, capitalised."""
        text = options[rng.integers(len(options))]
        return text[0].upper() + text[1:]

    if finding.kind == "cardiomegaly":
        sentence = choose(
            "The heart is enlarged.",
            f"{severity} cardiomegaly.",
            f"The cardiac silhouette is {severity}ly enlarged.",
        )
        impression = choose("Cardiomegaly.", f"{severity} cardiomegaly.")
        term = str(rng.choice(("Cardiomegaly", f"Cardiomegaly/{severity}")))
    elif finding.kind == "effusion":
        sentence = choose(
            f"{severity} {side} pleural effusion with blunting of the costophrenic angle.",
            f"There is a {severity} {side} pleural effusion.",
            f"Blunting of the {side} costophrenic angle, consistent with a {severity} effusion.",
        )
        impression = choose(f"{severity} {side} pleural effusion.", f"{side} pleural effusion.")
        term = str(rng.choice((f"Pleural Effusion/{side}", f"Pleural Effusion/{side}/{severity}")))
    elif finding.kind == "opacity" and rng.random() < 0.4:
        sentence = choose(
            f"There is focal consolidation in the {side} {lobe}.",
            f"{side} {lobe} airspace consolidation.",
        )
        impression = choose(
            f"{side} {lobe} consolidation, XXXX pneumonia.", f"{side} {lobe} consolidation."
        )
        term = f"Consolidation/lung/{lobe}/{side}"
    elif finding.kind == "opacity":
        sentence = choose(
            f"There is a {side} {lobe} opacity.",
            f"Patchy airspace opacity in the {side} {lobe}.",
            f"Focal opacity in the {side} {lobe}, XXXX pneumonia.",
        )
        impression = choose(
            f"{side} {lobe} opacity, XXXX pneumonia.", f"{side} {lobe} airspace opacity."
        )
        term = f"Opacity/lung/{lobe}/{side}"
    else:
        size = f"{finding.size_cm:g} cm" if rng.random() < 0.7 else f"{finding.size_cm * 10:.0f} mm"
        sentence = choose(
            f"A {size} nodule in the {side} {lobe}.",
            f"There is a {size} nodular density in the {side} {lobe}.",
        )
        impression = choose(
            f"{side} {lobe} pulmonary nodule. Recommend CT chest for further evaluation.",
            f"{size} {side} {lobe} nodule.",
        )
        term = f"Nodule/lung/{lobe}/{side}"
    return sentence, impression, term
