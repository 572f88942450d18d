"""The JSON the API answers with (also the schemas shown at ``/docs``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

RESEARCH_NOTICE = (
    "Research use only: not a medical device, not for diagnosis, triage or any clinical decision."
)


class Health(BaseModel):
    status: str = Field(description='"ok" once the model is loaded')
    run: str
    version: str


class HeadInfo(BaseModel):
    name: str
    needs_indication: bool = Field(description="runs only when an indication is given")
    threshold: float | None = Field(description="chosen on validation; null: not evaluated")


class ModelInfo(BaseModel):
    run: str
    image_size: int = Field(description="side of the square image the model reads, pixels")
    heads: list[HeadInfo]
    methods: list[str] = Field(description="heat-map methods that apply to this image encoder")
    default_method: str
    retrieval_index: bool = Field(description="nearest training reports are available")
    ood_guard: dict[str, Any] | None = Field(
        description="the OOD guard's method and threshold; null: not fitted (chestclip evaluate)"
    )
    max_upload_bytes: int
    findings: dict[str, list[str]] = Field(
        default_factory=dict, description="multi-label head → the findings it predicts"
    )
    notice: str = RESEARCH_NOTICE
    card: dict[str, Any] = Field(description="model card facts: model, data, test results")


class Draft(BaseModel):
    rank: int
    uid: str
    similarity: float = Field(description="cosine similarity of the image to the report")
    findings: str
    impression: str


class Trust(BaseModel):
    """Whether the run vouches for this image (``chestclip.inference.trust.Verdict``)."""

    flagged: bool = Field(description="out of distribution, or a view the heads never saw")
    refused: bool = Field(description="flagged, allow_ood not asked: no probability or decision")
    reasons: list[str] = Field(description="why it is flagged")
    notes: list[str] = Field(description="e.g. the guard is not fitted; a lateral gets no zones")
    ood: dict[str, Any] | None = Field(description="method, score, threshold; null: no guard")
    view: dict[str, Any] | None = Field(description="projection, p_frontal; null: not told")


class FindingResult(BaseModel):
    probability: float = Field(description="P(finding present), one sigmoid of a multi-label head")
    threshold: float | None = Field(description="chosen on validation; null: not evaluated")
    decision: str | None = Field(description='"present" or "absent"; null: no threshold')


class PredictResult(BaseModel):
    file: str = Field(description="the uploaded file's name (shown, never used as a path)")
    probabilities: dict[str, float | None] = Field(description="head → P(diseased); null: refused")
    thresholds: dict[str, float | None] = Field(description="head → validation threshold")
    decisions: dict[str, str | None] = Field(
        description='head → "diseased" or "normal"; null: no threshold, or refused'
    )
    trust: Trust
    explained_head: str = Field(description="the head whose score the heat map explains")
    method: str
    zones: str | None = Field(
        description='"anatomy": zones placed on the lungs and heart found in this image; '
        '"template": the average layout fitted into its content; null: lateral, or refused'
    )
    zone_masses: dict[str, float | None] = Field(
        description="zone → share of the heat map's mass (sums to 1; null for an empty map)"
    )
    top_zones: list[tuple[str, float]]
    image_png: str = Field(description="the grey image the model read, base64 PNG")
    heatmap_png: str | None = Field(description="the heat map in colour (inferno), base64 PNG")
    zones_png: str | None = Field(description="the zones' outlines, transparent elsewhere, PNG")
    overlay_png: str | None = Field(
        description="the heat map over the image at 50 % with the zones' outlines, base64 PNG"
    )
    drafts: list[Draft] = Field(description="nearest distinct training reports")
    findings: dict[str, dict[str, FindingResult]] = Field(
        default_factory=dict,
        description="multi-label head → finding → probability, threshold, decision; empty "
        "for a run without multi-label heads, or a refused image",
    )
    notice: str = RESEARCH_NOTICE
