"""Free-text reports → sections, on report texts written the way MIMIC-CXR's are.

Conventions encoded (MIMIC-CXR v2.0.0 reports as documented by PhysioNet and MIT-LCP/mimic-cxr):
a "FINAL REPORT" title line, upper-case headers followed by a colon at the start of a line (one
leading space), text wrapped over lines, "___" for de-identified words, a free-text preamble
(sometimes "WET READ: ..."), sections that may be missing, and HISTORY / REASON FOR EXAM /
CLINICAL HISTORY standing in for the indication.
"""

from chestclip.data.report_sections import parse_report_text

# Lines as in the files: a single space on "blank" lines and after "FINDINGS:" headers.
FULL = "\n".join([
    "                                 FINAL REPORT",
    " EXAMINATION:  CHEST (PA AND LAT)",
    " ",
    " INDICATION:  ___F with new onset ascites  // eval for infection",
    " ",
    " TECHNIQUE:  Chest PA and lateral",
    " ",
    " COMPARISON:  None.",
    " ",
    " FINDINGS: ",
    " ",
    " There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral",
    " nodular opacities that most likely represent nipple shadows. The",
    " cardiomediastinal silhouette is normal.",
    " ",
    " IMPRESSION: ",
    " ",
    " No acute cardiopulmonary process.",
    "",
])  # fmt: skip

WET_READ_NO_FINDINGS = "\n".join([
    " WET READ: ___ ___ ___ 10:25 PM",
    "  Interval increase in right pleural effusion.",
    " " + "_" * 78,
    "                                 FINAL REPORT",
    " HISTORY:  ___-year-old man with dyspnea.",
    " ",
    " REASON FOR EXAMINATION:  Evaluate for effusion.",
    " ",
    " IMPRESSION:  Moderate right pleural effusion, increased since ___.",
    "",
])  # fmt: skip


def test_sections_of_a_full_report():
    sections = parse_report_text(FULL)
    assert sections == {
        "indication": "___F with new onset ascites // eval for infection",
        "comparison": "None.",
        "findings": "There is no focal consolidation, pleural effusion or pneumothorax. Bilateral "
        "nodular opacities that most likely represent nipple shadows. The cardiomediastinal "
        "silhouette is normal.",
        "impression": "No acute cardiopulmonary process.",
    }


def test_preamble_dropped_missing_sections_empty_history_is_indication():
    sections = parse_report_text(WET_READ_NO_FINDINGS)
    assert sections["indication"] == "___-year-old man with dyspnea. Evaluate for effusion."
    assert sections["findings"] == "" and sections["comparison"] == ""
    assert sections["impression"] == "Moderate right pleural effusion, increased since ___."
    assert "10:25" not in " ".join(sections.values())  # the wet read is preamble


def test_combined_and_view_title_headers():
    text = (
        " CHEST, PA AND LATERAL:\n Lungs are clear.\n\n FINDINGS AND IMPRESSION:  Normal chest.\n"
    )
    sections = parse_report_text(text)
    assert sections["findings"] == "Lungs are clear."
    assert sections["impression"] == "Normal chest."


def test_text_without_headers_is_the_findings():
    sections = parse_report_text("Heart size normal.\nLungs clear.")
    assert sections == {"indication": "", "comparison": "", "findings": "Heart size normal. "
                        "Lungs clear.", "impression": ""}  # fmt: skip


def test_mimic_deidentified_ages_are_cleaned_like_iu_ones():
    from chestclip.data.text import clean_text

    assert clean_text("___-year-old man with dyspnea.") == "man dyspnea"
    assert clean_text("XXXX-year-old man with dyspnea.") == "man dyspnea"
