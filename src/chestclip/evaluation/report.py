"""``chestclip report``: one self-contained ``RUN/report.html`` (figures embedded, opens offline)."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

from chestclip.data.prepare import describe_views
from chestclip.errors import ChestClipError
from chestclip.evaluation.metrics import format_difference, metric_parts
from chestclip.explain.summary import summary_table
from chestclip.utils.io import atomic_write_text
from chestclip.utils.run_layout import RunLayout

REPORT_METRICS = (
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("accuracy", "accuracy"),
    ("sensitivity", "sensitivity"),
    ("specificity", "specificity"),
    ("f1_diseased", "F1 diseased"),
    ("ece", "ECE"),
)
FIGURE_TITLES = {
    "clip_loss.png": "CLIP pre-training: loss and validation retrieval",
    "roc.png": "ROC curves of every head (test images)",
    "modality_auc.png": "ROC-AUC by modality with 95% CIs (the paper's Fig. 7)",
    "confusion.png": "Confusion matrices at the validation-chosen thresholds (test images)",
    "reliability.png": "Calibration: reliability diagram (test images)",
    "findings_auc.png": "ROC-AUC per finding with 95% CIs (multi-label heads, test images)",
}
STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}.notice{color:#666;margin-top:.2em}
.warn{background:#fff4e5;border-left:4px solid #e69500;padding:.6em 1em;margin:.4em 0}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #ddd}pre{background:#f7f7f7;padding:1em;overflow:auto}
"""


def _cell(metric: dict[str, Any]) -> str:
    value, ci = metric_parts(metric)
    return f"{value}<br><small>{ci}</small>" if ci else value


def metrics_table(heads: dict[str, Any], level: str) -> str:
    header = "".join(f"<th>{title}</th>" for _, title in REPORT_METRICS)
    rows = []
    for name, result in heads.items():
        block = result["levels"][level]
        cells = "".join(
            f"<td class=num>{_cell(block['metrics'][key])}</td>" for key, _ in REPORT_METRICS
        )
        leak = " ⚠" if result["text_leaks_findings"] else ""
        rows.append(
            f"<tr><td>{html.escape(name)}{leak}</td><td>{html.escape(result['features'])}</td>{cells}"
            f"<td class=num>{result['threshold']['value']:.3f}</td><td class=num>{block['n']}</td></tr>"
        )
    return (
        f"<table><tr><th>head</th><th>features</th>{header}<th>threshold</th><th>n</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def comparisons_table(comparisons: list[dict[str, Any]]) -> str:
    """Paired ROC-AUC differences (head − reference) per image and per study with their paired
    bootstrap intervals; "yes" where the interval excludes 0."""
    if not comparisons:
        return "<p>No head-versus-head comparison applies to these heads.</p>"
    rows = []
    for c in comparisons:
        cells = ""
        for level in ("image", "study"):
            difference = c["levels"][level]
            low, high = difference["ci_low"], difference["ci_high"]
            excludes = "n/a" if low is None else "yes" if low > 0 or high < 0 else "no"
            cells += f"<td class=num>{format_difference(difference)}</td><td>{excludes}</td>"
        rows.append(
            f"<tr><td>{html.escape(c['head'])}</td><td>{html.escape(c['reference'])}</td>"
            f"<td>{html.escape(c['measures'])}</td>{cells}</tr>"
        )
    return (
        "<table><tr><th>head</th><th>reference</th><th>measures</th>"
        "<th>difference per image (95% CI)</th><th>CI excludes 0</th>"
        "<th>difference per study (95% CI)</th><th>CI excludes 0</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def findings_section(path: Path) -> str:
    """Per multi-label head (RUN/eval/findings.json): each finding's test ROC-AUC and PR-AUC
    with CIs, positives, validation threshold and status, the macro and micro means, and the
    findings it could not learn."""
    if not path.is_file():
        return ""
    document = json.loads(path.read_text())
    policy = document["label_policy"]
    parts = [
        "<h2>Findings: multi-label heads (test images)</h2><p>One sigmoid per finding; "
        f"uncertain labels: <b>{html.escape(str(policy['uncertain']))}</b>, missing labels: "
        f"<b>{html.escape(str(policy['missing']))}</b> (ignored ones are masked). Thresholds "
        "chosen per finding on validation; 95% CIs by bootstrap over patients. A finding with "
        "too few test positives or negatives is shown with its reason and left out of the means."
        "</p>"
    ]
    for head, result in document["heads"].items():
        block = result["levels"]["image"]
        rows = []
        for name, entry in block["findings"].items():
            metrics, threshold = entry["metrics"], entry["threshold"]["value"]
            status = entry["status"] if entry["status"] == "ok" else entry["reason"]
            rows.append(
                f"<tr><td>{html.escape(name)}</td><td class=num>{_cell(metrics['roc_auc'])}</td>"
                f"<td class=num>{_cell(metrics['pr_auc'])}</td>"
                f"<td class=num>{entry['n_positive']}/{entry['n']}</td>"
                f"<td class=num>{'—' if threshold is None else f'{threshold:.3f}'}</td>"
                f"<td>{html.escape(status)}</td></tr>"
            )
        for mean in ("macro", "micro"):
            rows.append(
                f"<tr><th>{mean} mean</th><td class=num>{_cell(block[mean]['roc_auc'])}</td>"
                f"<td class=num>{_cell(block[mean]['pr_auc'])}</td><td></td><td></td>"
                f"<td>over {len(block['macro']['findings'])} findings</td></tr>"
            )
        rows += [
            f"<tr><td>{html.escape(name)}</td><td></td><td></td><td></td><td></td>"
            f"<td>not trained: {html.escape(reason)}</td></tr>"
            for name, reason in result["not_trained"].items()
        ]
        leak = " ⚠ (reads findings/impression)" if result["text_leaks_findings"] else ""
        parts.append(
            f"<h3>{html.escape(head)}{leak}</h3><table><tr><th>finding</th><th>ROC-AUC</th>"
            "<th>PR-AUC</th><th>positives/n</th><th>threshold</th><th>status</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    return "".join(parts)


def data_table(data: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{split}</td><td class=num>{c['patients']}</td><td class=num>{c['images']}</td>"
        f"<td class=num>{c['normal']}</td><td class=num>{c['diseased']}</td></tr>"
        for split, c in data["splits"].items()
    )
    skipped = data.get("skipped_by_reason") or {}
    skip_text = ", ".join(f"{n} {html.escape(r)}" for r, n in skipped.items()) or "none"
    # where the views came from: on a download without view tables, every one is inferred
    views = f"; {describe_views(data)}" if data.get("views_by_source") else ""
    return (
        f"<p>source <code>{html.escape(str(data.get('source')))}</code> ({data.get('layout')} layout); "
        f"skipped: {skip_text}{views}</p><table><tr><th>split</th><th>patients</th><th>images</th>"
        f"<th>normal</th><th>diseased</th></tr>{rows}</table>"
    )


def figure(path: Path, title: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
    )


def faithfulness_table(path: Path) -> str:
    """Per method: localisation vs the lesion-area baseline, deletion/insertion vs random order,
    the gains over chance with their intervals (explain.summary.SUMMARY_COLUMNS)."""
    summary = json.loads(path.read_text())
    table = summary_table(summary)
    header = "".join(f"<th>{html.escape(title)}</th>" for title in table.columns)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td class=num>{html.escape(cell)}</td>" for cell in row)
        + "</tr>"
        for name, row in table.iterrows()
    )
    warning = f"<p>Warning: {html.escape(summary['warning'])}.</p>" if "warning" in summary else ""
    return (
        warning
        + f"<p>Head <code>{html.escape(summary['head'])}</code>, {html.escape(summary['split'])} split; "
        f"default method: <b>{html.escape(summary['default_method'])}</b>, chosen on the "
        f"{html.escape(str(summary.get('default_chosen_on', summary['split'])))} split. The rank "
        "correlation is the cascading randomisation's once the head, projection and top block "
        "are re-initialised; every step is plotted below.</p>"
        f"<table><tr><th>method</th>{header}</tr>{rows}</table>{zones_note(summary)}"
    )


def zones_note(summary: dict[str, Any]) -> str:
    """Which zones the ROI shares were measured in (outlined in the gallery)."""
    counts = summary.get("zones")
    if not counts:
        return ""
    used = ", ".join(f"{source} for {n} image{'s' * (n != 1)}" for source, n in counts.items())
    return (
        f"<p>ROI zones (outlined on the gallery): {html.escape(used)}. <i>anatomy</i>: placed "
        "on the lung fields and heart found in that film; <i>template</i>: the average adult "
        "PA layout fitted into the film's content, where no plausible lungs were found.</p>"
    )


def explanations_section(run: Path) -> str:
    """The explanation stage's results when it has run (RUN/explain/), else how to add them."""
    layout = RunLayout(run)
    images = sorted(layout.explain.glob("*.png"))
    if not images:
        return "<p>No explanations yet: <code>chestclip explain --run RUN ...</code> adds Grad-CAM examples here.</p>"
    table = faithfulness_table(layout.faithfulness) if layout.faithfulness.is_file() else ""
    return table + "".join(figure(p, p.stem.replace("_", " ")) for p in images)


def sweep_notice(run: Path, leaderboard: Path | None) -> str:
    """For the trial a sweep chose: where its leaderboard is, and that the test split was read
    for this trial alone."""
    if leaderboard is None:
        return ""
    link = html.escape(os.path.relpath(leaderboard, run))
    return (
        f'<p>Chosen by a hyperparameter sweep on the validation split (<a href="{link}">leaderboard of every trial</a>); '
        "the test split below was read for this trial only.</p>"
    )


def write_report(run: str | Path, leaderboard: str | Path | None = None) -> Path:
    """Render RUN/report.html from RUN/eval/metrics.json, RUN/plots, RUN/config.yaml, RUN/env.json;
    ``leaderboard``: the sweep that chose this run, linked from the page."""
    layout = RunLayout(run)
    run = layout.root
    if not layout.metrics.is_file():
        raise ChestClipError(f"{layout.metrics}: missing; run `chestclip evaluate` first")
    metrics = json.loads(layout.metrics.read_text())
    env = json.loads(layout.env.read_text()) if layout.env.is_file() else {}
    config = layout.config.read_text() if layout.config.is_file() else "(not recorded)"
    plots = sorted(layout.plots.glob("*.png"))
    ordered = sorted(
        plots, key=lambda p: list(FIGURE_TITLES).index(p.name) if p.name in FIGURE_TITLES else 99
    )
    findings_warnings = (
        json.loads(layout.findings_metrics.read_text())["warnings"]
        if layout.findings_metrics.is_file()
        else []
    )
    warnings = "".join(
        f'<div class="warn">{html.escape(w)}</div>' for w in metrics["warnings"] + findings_warnings
    )
    body = f"""
<h1>chestclip report</h1>
<p class="notice">Research use only — not a medical device. Run <code>{html.escape(str(run.resolve()))}</code>,
evaluated {html.escape(metrics["created"])} with chestclip {html.escape(metrics["chestclip_version"])}.</p>
{sweep_notice(run, Path(leaderboard) if leaderboard else None)}
<h2>Warnings</h2>{warnings or "<p>none</p>"}
<h2>Data</h2>{data_table(metrics["data"])}
<h2>Test metrics per image</h2>
<p>95% confidence intervals: bootstrap over patients. Thresholds chosen on the validation split.
⚠ marks heads whose text includes findings/impression: they measure report reading, not image reading.</p>
{metrics_table(metrics["heads"], "image")}
<h2>Test metrics per study (views averaged)</h2>{metrics_table(metrics["heads"], "study")}
<h2>Head versus head: paired ROC-AUC differences</h2>
<p>ROC-AUC of the head minus that of the reference on the same test images (studies), with a
paired bootstrap interval: each resample draws the patients once and scores both heads on it. A
difference is established only when its interval excludes 0; overlapping or separate intervals
do not settle it.</p>
{comparisons_table(metrics.get("comparisons", []))}
{findings_section(layout.findings_metrics)}
<h2>Figures</h2>{"".join(figure(p, FIGURE_TITLES.get(p.name, p.stem)) for p in ordered)}
<h2>Explanations</h2>{explanations_section(run)}
<h2>Configuration</h2><pre>{html.escape(config)}</pre>
<h2>Environment</h2><pre>{html.escape(json.dumps(env, indent=2))}</pre>
"""
    page = (
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>chestclip report</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
    atomic_write_text(layout.report, page)
    return layout.report
