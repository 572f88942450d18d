"""One phantom study: every random choice (the plan) and the images rendered from it.

Each study draws from its own ``SeedSequence(seed, spawn_key=(uid,))``, split into independent
streams for identifiers, findings, report, each view's anatomy and each view's noise. A study is
therefore the same whatever the number of studies, the image size, the visibility or the layout,
and drawing lesions never shifts the random numbers of the anatomy or the noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chestclip.phantom.exposure import expose
from chestclip.phantom.findings import Finding, FrontalImage, draw_frontal, sample_findings
from chestclip.phantom.frontal import FrontalAnatomy, sample_frontal_anatomy
from chestclip.phantom.lateral import LateralAnatomy, render_lateral, sample_lateral_anatomy
from chestclip.phantom.reports import Report, write_report

LATERAL_FRACTION = 0.9
# (frontal, lateral) image number pairs as they occur in the archive
VIEW_CODES = ((1001, 2001), (4001, 3001))


@dataclass(frozen=True)
class StudyPlan:
    """Everything about a study except its pixels."""

    uid: int
    findings: tuple[Finding, ...]
    report: Report
    frontal_id: str  # canonical image id, e.g. "12_IM-0034-1001"
    lateral_id: str | None
    frontal: FrontalAnatomy
    lateral: LateralAnatomy
    frontal_noise_seed: int
    lateral_noise_seed: int

    @property
    def label(self) -> int:
        """1 for an abnormal study (any finding), 0 for a normal one."""
        return int(bool(self.findings))


@dataclass(frozen=True)
class StudyImages:
    """The rendered views of a study: frontal with lesion masks, lateral ``[H, W]`` or None."""

    frontal: FrontalImage
    lateral: np.ndarray | None


def plan_study(seed: int, uid: int) -> StudyPlan:
    """Draw study ``uid`` (1-based) of the phantom dataset with ``seed``."""
    streams = np.random.SeedSequence(seed, spawn_key=(uid,)).spawn(6)
    ids, findings_rng, report_rng, frontal_rng, lateral_rng, noise_rng = (
        np.random.default_rng(stream) for stream in streams
    )
    serial = int(ids.integers(1, 10000))
    frontal_code, lateral_code = VIEW_CODES[int(ids.random() < 0.25)]
    has_lateral = bool(ids.random() < LATERAL_FRACTION)
    findings = sample_findings(findings_rng)
    return StudyPlan(
        uid=uid,
        findings=findings,
        report=write_report(findings, has_lateral, report_rng),
        frontal_id=f"{uid}_IM-{serial:04d}-{frontal_code}",
        lateral_id=f"{uid}_IM-{serial:04d}-{lateral_code}" if has_lateral else None,
        frontal=sample_frontal_anatomy(frontal_rng),
        lateral=sample_lateral_anatomy(lateral_rng),
        frontal_noise_seed=int(noise_rng.integers(2**63)),
        lateral_noise_seed=int(noise_rng.integers(2**63)),
    )


def render_study(plan: StudyPlan, size: int, visibility: float) -> StudyImages:
    """Render the study's views at ``size`` x ``size`` pixels, lesions at ``visibility``."""
    frontal = draw_frontal(plan.frontal, plan.findings, size, visibility, plan.frontal_noise_seed)
    lateral = None
    if plan.lateral_id is not None:
        density = render_lateral(plan.lateral, size)
        lateral = expose(
            density, plan.lateral.exposure, np.random.default_rng(plan.lateral_noise_seed)
        )
    return StudyImages(frontal=frontal, lateral=lateral)
