"""Every finding's probability and decision for a new image, from the run's multi-label heads
(``RUN/heads/findings/``) at the per-finding thresholds ``chestclip evaluate`` chose on
validation (``RUN/eval/findings.json``, image level).

As for the binary heads, a head reading report text runs only on the indication (known before
the image is read); heads trained on findings or impression never see a new image's report. A
run without multi-label heads gives none, so ``predict`` and ``serve`` stay as they were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from chestclip.evaluation.findings import FINDINGS_PREFIX
from chestclip.models.heads import MultiLabelHead
from chestclip.training.probe import load_head
from chestclip.utils.run_layout import RunLayout

PRESENT, ABSENT = "present", "absent"


def finding_thresholds(run: str | Path) -> dict[str, dict[str, float | None]]:
    """``{head: {finding: threshold}}`` chosen on validation by ``chestclip evaluate`` (per
    image); empty before the run is evaluated."""
    path = RunLayout(run).findings_metrics
    if not path.is_file():
        return {}
    heads = json.loads(path.read_text())["heads"]
    return {
        name: {f: e["threshold"]["value"] for f, e in r["levels"]["image"]["findings"].items()}
        for name, r in heads.items()
    }


@dataclass
class FindingHeads:
    """The multi-label heads of a run that can read a new image, with their thresholds."""

    heads: dict[str, tuple[MultiLabelHead, dict[str, Any]]]  # "findings/<name>" → head, info
    thresholds: dict[str, dict[str, float | None]]

    @classmethod
    def load(cls, run: str | Path, device: torch.device) -> FindingHeads:
        """Every head of ``run`` that reads the image, on ``device``; each checked against the
        run's CLIP (a stale head is refused)."""
        layout = RunLayout(run)
        heads = {}
        for directory in layout.finding_head_dirs():
            head, info = load_head(directory)
            if "image" in info["inputs"]:
                layout.check_head(directory, info)
                heads[FINDINGS_PREFIX + info["name"]] = (head.to(device), info)
        return cls(heads, finding_thresholds(run))

    def predict(
        self,
        names: list[str],
        image_embedding: torch.Tensor,
        text_embedding: torch.Tensor | None,
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """``{head: {finding: {probability, threshold, decision}}}`` of the heads ``names`` for
        one image (embedding [D] on the heads' device) and, for heads that read it, the
        indication's embedding [D]; decision ``present``/``absent``, or None where no
        threshold was chosen."""
        parts = {"image": image_embedding, "text": text_embedding}
        found = {}
        for name in names:
            head, info = self.heads[name]
            features = torch.cat([parts[p].reshape(-1) for p in info["inputs"]])[None]  # [1, D']
            with torch.no_grad():
                probabilities = head.probabilities(features.float())[0].tolist()
            thresholds = self.thresholds.get(name, {})
            found[name] = {}
            for finding, probability in zip(head.finding_names, probabilities, strict=True):
                threshold = thresholds.get(finding)
                decision = None
                if threshold is not None:
                    decision = PRESENT if probability >= threshold else ABSENT
                found[name][finding] = {
                    "probability": probability,
                    "threshold": threshold,
                    "decision": decision,
                }
        return found
