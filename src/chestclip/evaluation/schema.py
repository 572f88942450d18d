"""The layout of ``RUN/eval/metrics.json`` (and ``findings.json``) and a dependency-free
validator for them.

``METRICS_SCHEMA`` is a JSON Schema (draft 2020-12 style) dict; ``validate_metrics(document)``
lists what is wrong with a document (empty when valid).

## Fields

Top level (no other keys allowed):

- `schema_version` — integer, always `2` (2 added `comparisons`); bumped when this layout
  changes incompatibly.
- `created` — string, ISO 8601 UTC time the evaluation ran (e.g. `2025-01-31T12:00:00+00:00`).
- `chestclip_version` — string, `chestclip.__version__` that wrote the file.
- `data` — object describing the evaluated data; `splits` is required, other keys are free:
  - `source` — string or null, the prepared dataset's source path.
  - `layout` — string, `openi`, `kaggle`, `mimic`, `chexpert` or `manifest`.
  - `studies`, `images` — integers ≥ 0, totals over all splits.
  - `splits` — object `{split name: {patients, studies, images, normal, diseased}}`, integers
    ≥ 0, exactly the `splits` block of the prepare stage's `summary.json`; normal/diseased count
    studies (IU X-Ray: one study per patient); `studies` is absent from older summaries.
  - `views_by_source` — object or null, `{metadata|inferred|none: {Frontal, Lateral, unknown}}`
    image counts, the prepare stage's `summary.json` block (null before it existed).
- `heads` — object `{head name: head result}`, one entry per classifier evaluated (e.g.
  `image`, `text`, `multimodal`, `bag_of_words`). A head result is the output of
  `chestclip.evaluation.metrics.evaluate_head` plus three provenance keys:
  - `features` — string, what the head sees (e.g. `image`, `text`, `image+text`, `tfidf`).
  - `text_fields` — array of report field names the text came from, or null for no text.
  - `text_leaks_findings` — boolean, true when `text_fields` contains `findings` or
    `impression`: the label is written in that text, so its scores are not a diagnostic result.
  - `threshold` — object:
    - `value` — number, predict diseased when P(diseased) ≥ value.
    - `method` — `youden` (Youden's J on validation) or `fixed`.
    - `chosen_on` — `validation` (youden) or `none` (fixed); never test data.
  - `levels` — object with exactly `image` (one row per test image) and `study` (one row per
    test study, P(diseased) averaged over its views), each:
    - `n` — integer, number of test images or studies; `n_positive` — how many are diseased.
    - `n_patients` — integer, distinct patients (IU X-Ray: one report = one patient = `uid`).
    - `metrics` — object `{metric: {value, ci_low, ci_high}}` with every name of
      `chestclip.evaluation.metrics.METRIC_NAMES`: `accuracy`, `balanced_accuracy`, `roc_auc`,
      `pr_auc` (average precision), `sensitivity`, `specificity`, `accuracy_normal`
      (= specificity), `accuracy_diseased` (= sensitivity), `precision_normal`, `recall_normal`,
      `f1_normal`, `precision_diseased`, `recall_diseased`, `f1_diseased`, `ece` (expected
      calibration error, 10 equal-width bins of P(diseased)), `brier`. Each value lies in
      [0, 1] or is null where undefined (e.g. AUC on a single class, or `n_boot` = 0 for CIs).
      `ci_low`/`ci_high` bound the percentile bootstrap interval at level 1 − `alpha`.
    - `confusion` — `[[tn, fp], [fn, tp]]`, integers ≥ 0 (rows true, columns predicted,
      0 = normal first).
    - `bootstrap` — object: `n_boot` (integer ≥ 0 resamples), `seed` (integer), `alpha`
      (number in (0, 1)), `unit` (string, what was resampled: whole patients),
      `single_class_resamples` (integer, resamples holding one class only, skipped for AUC-type
      metrics).
- `comparisons` — array, one entry per head-versus-head claim the report makes
  (`chestclip.evaluation.comparisons.head_comparisons`: a text head vs the bag-of-words on the
  same text, a multimodal head vs each image-only head and vs the text-only head on its text,
  the frozen-feature image head vs the fine-tuned image baseline), each:
  - `head`, `reference` — strings, head names of `heads`; `measures` — string, what the
    difference tells; `metric` — `roc_auc`.
  - `levels` — object with exactly `image` and `study`, each the ROC-AUC of `head` minus that of
    `reference` on the same test rows: `value`, `ci_low`, `ci_high` (numbers in [−1, 1] or null;
    the percentile interval of a PAIRED bootstrap: each resample draws the patients once and
    scores both heads on it), `n_boot`, `seed`, `alpha`, `unit` and `single_class_resamples`
    as in a level's `bootstrap`. The difference is established when the interval excludes 0.
- `warnings` — array of strings, anything a reader must know before trusting the numbers; a
  text head is flagged below the bag-of-words only when its comparison's per-image interval
  lies below 0.

## `RUN/eval/findings.json` (multi-label heads; `FINDINGS_SCHEMA`, `validate_findings`)

Written only when the run has multi-label heads (`RUN/heads/findings/`). Top level:
`schema_version` (integer, always `1`), `created`, `chestclip_version`, `data` (as above),
`warnings` (as above: text heads reading findings/impression), and

- `label_policy` — object `{uncertain, missing}`: `ignore`, `zeros` or `ones`, how the prepared
  dataset turned uncertain (−1) and blank labels into targets (ignored ones are masked).
- `heads` — object `{"findings/<head name>": head}`, each:
  - `features`, `text_fields`, `text_leaks_findings` — as for the binary heads.
  - `not_trained` — object `{finding: reason}`: findings of `findings.csv` the head could not
    learn (no positive or no negative training label); they have no scores.
  - `levels` — object with exactly `image` and `study` (views' probabilities averaged), each
    the output of `chestclip.evaluation.multilabel.evaluate_findings`:
    - `findings` — `{finding: entry}` for every finding the head predicts: `status` (`ok`,
      `too_few_positives`, `too_few_negatives`, `no_threshold`), `reason` (string, null when
      ok), counts `n`, `n_positive`, `n_negative`, `n_masked`, `n_patients`, `threshold`
      (`value` number or null, `method`, `chosen_on` as above) and `metrics`: `roc_auc`,
      `pr_auc`, `sensitivity`, `specificity`, `precision`, `f1`, each `{value, ci_low,
      ci_high}` in [0, 1] or null (threshold metrics at the finding's validation threshold).
    - `macro` — `{findings: [names averaged], roc_auc, pr_auc}`: the mean over the `ok`
      findings, its CI from the same patient resamples; `micro` — `{roc_auc, pr_auc}` of every
      unmasked (row, finding) pair of those findings pooled.
    - `excluded` — `{finding: reason}` of every finding left out of the means.
    - `bootstrap` — `n_boot`, `seed`, `alpha`, `unit` (`patient`), `min_positives` (test
      positives and negatives a finding needs to be averaged).
"""

from __future__ import annotations

import datetime
import math
from numbers import Integral, Real
from typing import Any

from chestclip import __version__
from chestclip.evaluation.baselines import text_leaks_findings
from chestclip.evaluation.metrics import LEVELS, METRIC_NAMES, THRESHOLD_METHODS

SCHEMA_VERSION = 2


def _object(properties: dict, required: list[str] | None = None, extra: Any = False) -> dict:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": extra,
    }


_COUNT = {"type": "integer", "minimum": 0}
_UNIT_INTERVAL = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_PAIR_OF_COUNTS = {"type": "array", "minItems": 2, "maxItems": 2, "items": _COUNT}

METRIC_ENTRY_SCHEMA = _object(
    {"value": _UNIT_INTERVAL, "ci_low": _UNIT_INTERVAL, "ci_high": _UNIT_INTERVAL}
)
LEVEL_SCHEMA = _object(
    {
        "n": _COUNT,
        "n_positive": _COUNT,
        "n_patients": _COUNT,
        "metrics": _object(dict.fromkeys(METRIC_NAMES, METRIC_ENTRY_SCHEMA)),
        "confusion": {"type": "array", "minItems": 2, "maxItems": 2, "items": _PAIR_OF_COUNTS},
        "bootstrap": _object(
            {
                "n_boot": _COUNT,
                "seed": {"type": "integer"},
                "alpha": {"type": "number", "minimum": 0, "maximum": 1},
                "unit": {"type": "string"},
                "single_class_resamples": _COUNT,
            }
        ),
    }
)
HEAD_RESULT_SCHEMA = _object(
    {
        "threshold": _object(
            {
                "value": {"type": "number"},
                "method": {"enum": list(THRESHOLD_METHODS)},
                "chosen_on": {"enum": ["validation", "none"]},
            }
        ),
        "levels": _object(dict.fromkeys(LEVELS, LEVEL_SCHEMA)),
    }
)
HEAD_SCHEMA = _object(
    {
        **HEAD_RESULT_SCHEMA["properties"],
        "features": {"type": "string"},
        "text_fields": {"type": ["array", "null"], "items": {"type": "string"}},
        "text_leaks_findings": {"type": "boolean"},
    }
)
_DIFFERENCE = {"type": ["number", "null"], "minimum": -1, "maximum": 1}
COMPARISON_SCHEMA = _object(
    {
        "head": {"type": "string"},
        "reference": {"type": "string"},
        "measures": {"type": "string"},
        "metric": {"enum": ["roc_auc"]},
        "levels": _object(
            dict.fromkeys(
                LEVELS,
                _object(
                    {
                        "value": _DIFFERENCE,
                        "ci_low": _DIFFERENCE,
                        "ci_high": _DIFFERENCE,
                        **LEVEL_SCHEMA["properties"]["bootstrap"]["properties"],
                    }
                ),
            )
        ),
    }
)
_SPLIT_COUNTS = _object(
    dict.fromkeys(("patients", "studies", "images", "normal", "diseased"), _COUNT),
    required=["patients", "images", "normal", "diseased"],  # studies: prepared since MIMIC-CXR
)
DATA_SCHEMA = _object(
    {
        "source": {"type": ["string", "null"]},
        "layout": {"type": "string"},
        "studies": _COUNT,
        "images": _COUNT,
        "splits": {"type": "object", "additionalProperties": _SPLIT_COUNTS},
    },
    required=["splits"],
    extra=True,
)
_WARNINGS = {"type": "array", "items": {"type": "string"}}


def _document(name: str, title: str, version: int, properties: dict) -> dict:
    """The schema of an evaluation document: the shared header (version, time, chestclip
    version, data) and ``properties``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://chestclip/schemas/{name}-v{version}.json",
        "title": title,
        **_object(
            {
                "schema_version": {"type": "integer", "enum": [version]},
                "created": {"type": "string"},
                "chestclip_version": {"type": "string"},
                "data": DATA_SCHEMA,
                **properties,
            }
        ),
    }


METRICS_SCHEMA = _document(
    "eval-metrics",
    "chestclip evaluation metrics (RUN/eval/metrics.json)",
    SCHEMA_VERSION,
    {
        "heads": {"type": "object", "additionalProperties": HEAD_SCHEMA},
        "comparisons": {"type": "array", "items": COMPARISON_SCHEMA},
        "warnings": _WARNINGS,
    },
)

FINDINGS_SCHEMA_VERSION = 1
_FINDING_STATUS = ["ok", "too_few_positives", "too_few_negatives", "no_threshold"]
_FINDING_METRICS = ("roc_auc", "pr_auc", "sensitivity", "specificity", "precision", "f1")
_MEANS = dict.fromkeys(("roc_auc", "pr_auc"), METRIC_ENTRY_SCHEMA)
_FINDINGS_BOOTSTRAP = {
    key: value
    for key, value in LEVEL_SCHEMA["properties"]["bootstrap"]["properties"].items()
    if key != "single_class_resamples"
}
_POLICY = {"enum": ["ignore", "zeros", "ones"]}
_PROVENANCE = {
    k: HEAD_SCHEMA["properties"][k] for k in ("features", "text_fields", "text_leaks_findings")
}
_REASONS = {"type": "object", "additionalProperties": {"type": "string"}}
FINDING_ENTRY_SCHEMA = _object(
    {
        "status": {"enum": _FINDING_STATUS},
        "reason": {"type": ["string", "null"]},
        **dict.fromkeys(("n", "n_positive", "n_negative", "n_masked", "n_patients"), _COUNT),
        "threshold": _object(
            {
                "value": {"type": ["number", "null"]},
                "method": {"enum": list(THRESHOLD_METHODS)},
                "chosen_on": {"enum": ["validation", "none"]},
            }
        ),
        "metrics": _object(dict.fromkeys(_FINDING_METRICS, METRIC_ENTRY_SCHEMA)),
    }
)
FINDINGS_LEVEL_SCHEMA = _object(
    {
        "findings": {"type": "object", "additionalProperties": FINDING_ENTRY_SCHEMA},
        "macro": _object({"findings": {"type": "array", "items": {"type": "string"}}, **_MEANS}),
        "micro": _object(_MEANS),
        "excluded": _REASONS,
        "bootstrap": _object({**_FINDINGS_BOOTSTRAP, "min_positives": _COUNT}),
    }
)
FINDINGS_SCHEMA = _document(
    "eval-findings",
    "chestclip multi-label findings (RUN/eval/findings.json)",
    FINDINGS_SCHEMA_VERSION,
    {
        "label_policy": _object({"uncertain": _POLICY, "missing": _POLICY}),
        "heads": {
            "type": "object",
            "additionalProperties": _object(
                {
                    **_PROVENANCE,
                    "not_trained": _REASONS,
                    "levels": _object(dict.fromkeys(LEVELS, FINDINGS_LEVEL_SCHEMA)),
                }
            ),
        },
        "warnings": _WARNINGS,
    },
)


def document_header(version: int, summary: dict[str, Any]) -> dict[str, Any]:
    """The header every evaluation document starts with: schema version, time (UTC), chestclip
    version and the evaluated data, from the prepared dataset's ``summary``."""
    return {
        "schema_version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "chestclip_version": __version__,
        "data": {
            **{key: summary.get(key) for key in ("source", "layout", "studies", "images")},
            "views_by_source": summary.get("views_by_source"),
            "splits": summary["splits"],
            "skipped_by_reason": summary.get("skipped_by_reason", {}),
        },
    }


# Hand-written rather than the `jsonschema` package: only this subset is needed, and it is not
# a dependency of chestclip.
_ANNOTATIONS = {"$schema", "$id", "title", "description"}
_KEYWORDS = {
    "type",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
}


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, (list, tuple))
    if name == "object":
        return isinstance(value, dict)
    if isinstance(value, bool) or not isinstance(value, Real):
        return False
    if name == "integer":
        return isinstance(value, Integral) or float(value).is_integer()
    if name == "number":
        return True
    raise ValueError(f"unsupported schema type {name!r}")


def _walk(schema: dict, value: Any, path: str, problems: list[str]) -> None:
    unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} not supported by validate_metrics")
    where = path or "(document)"
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{where}: {value} is not valid JSON (use null for undefined)")
        return
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, t) for t in types):
            problems.append(f"{where}: expected {' or '.join(types)}, got {type(value).__name__}")
            return
    if "enum" in schema and not any(
        value == option and isinstance(value, bool) == isinstance(option, bool)
        for option in schema["enum"]
    ):
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing required key {key!r}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if key in properties:
                _walk(properties[key], item, child, problems)
            elif extra is False:
                problems.append(f"{where}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                _walk(extra, item, child, problems)
    if isinstance(value, (list, tuple)):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{where}: {len(value)} items, fewer than {schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: {len(value)} items, more than {schema['maxItems']}")
        if "items" in schema:
            for index, item in enumerate(value):
                _walk(schema["items"], item, f"{where}[{index}]", problems)


def validate_metrics(document: Any) -> list[str]:
    """Every way ``document`` breaks ``METRICS_SCHEMA`` (one line each, with its path); [] if valid.

    Beyond the schema: a head's ``text_leaks_findings`` must agree with its ``text_fields``, and
    a comparison must name heads of ``heads``.
    """
    problems: list[str] = []
    _walk(METRICS_SCHEMA, document, "", problems)
    heads = document.get("heads") if isinstance(document, dict) else None
    if not isinstance(heads, dict):
        return problems
    for name, head in heads.items():
        if not isinstance(head, dict):
            continue  # already reported by the schema walk
        leaks, fields = head.get("text_leaks_findings"), head.get("text_fields") or []
        well_typed = isinstance(fields, list) and all(isinstance(f, str) for f in fields)
        if isinstance(leaks, bool) and well_typed and leaks != text_leaks_findings(fields):
            problems.append(
                f"heads.{name}.text_leaks_findings: {leaks} disagrees with text_fields {fields}"
            )
    comparisons = document.get("comparisons")
    for index, comparison in enumerate(comparisons if isinstance(comparisons, list) else []):
        for role in ("head", "reference") if isinstance(comparison, dict) else ():
            if isinstance(comparison.get(role), str) and comparison[role] not in heads:
                problems.append(f"comparisons[{index}].{role}: {comparison[role]!r} is not a head")
    return problems


def validate_findings(document: Any) -> list[str]:
    """Every way ``document`` breaks ``FINDINGS_SCHEMA`` (one line each, with its path); [] if
    valid. Beyond the schema: a finding is averaged into the macro mean exactly when its status
    is ``ok``, and excluded (with its reason) otherwise."""
    problems: list[str] = []
    _walk(FINDINGS_SCHEMA, document, "", problems)
    if problems:
        return problems
    for name, head in document["heads"].items():
        for level, result in head["levels"].items():
            ok = [f for f, entry in result["findings"].items() if entry["status"] == "ok"]
            if sorted(ok) != sorted(result["macro"]["findings"]):
                problems.append(f"heads.{name}.levels.{level}.macro.findings: not the ok ones")
            if set(result["excluded"]) != set(result["findings"]) - set(ok):
                problems.append(f"heads.{name}.levels.{level}.excluded: not the others")
    return problems
