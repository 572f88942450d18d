"""The web viewer and its JSON API on one run (``create_app``), a FastAPI app.

Routes: ``GET /`` the viewer page (plain HTML/CSS/JS from ``static/``), ``GET /api/health``,
``GET /api/model`` (heads, thresholds, methods, model card facts), ``POST /api/predict``
(multipart: ``file``, optional ``indication`` and ``method``), ``GET /docs`` (Swagger UI from
the assets fastapi-offline packages: no CDN) and ``GET /openapi.json``.

The model is loaded once, when the app is created; :class:`Predictor` scores one image at a time,
so concurrent requests are safe, and at most ``max_decodes`` uploads are decoded at once (each
within the pixel cap), so memory stays bounded whatever is uploaded. Errors are one line and
name no server path: 400 for an unreadable or unsupported upload, 413 beyond the size limit, 422
for a malformed request (an indication longer than ``MAX_INDICATION_CHARS``), 500 (details in the
server's log only) for a bug. Requests pass ``chestclip.serve.security`` first (Host allow-list,
same-origin POSTs, optional bearer token).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.middleware.trustedhost import TrustedHostMiddleware

from chestclip import __version__
from chestclip.data.limits import DEFAULT_MAX_PIXELS
from chestclip.data.readers import ImageReadError
from chestclip.errors import ChestClipError
from chestclip.inference.model_card import model_card_facts
from chestclip.inference.predict import MAX_INDICATION_CHARS, Predictor, reads_new_images
from chestclip.serve.images import blended_overlay, coloured_heatmap, png_base64, zone_outlines
from chestclip.serve.schemas import Draft, HeadInfo, Health, ModelInfo, PredictResult, Trust
from chestclip.serve.security import (
    LOOPBACK_NAMES,
    RequestGuard,
    strip_paths,
    without_paths,
)
from chestclip.serve.uploads import UploadLimit, display_name, stored_upload

DEFAULT_MAX_UPLOAD_BYTES = 32 * 2**20
DEFAULT_MAX_DECODES = 2  # uploads decoded at once: each may take ~10 bytes per allowed pixel
STATIC = Path(__file__).parent / "static"
# The page loads nothing but its own files and the images the API returns as data: URLs.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
ERRORS = {
    400: {"description": "unreadable, corrupt or unsupported upload; unknown method"},
    413: {"description": "upload larger than the server's limit"},
}


def one_line(message: str) -> str:
    return " ".join(message.split())


def create_app(
    run_dir: str | Path,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    drafts: int = 3,
    predictor: Predictor | None = None,
    hosts: Sequence[str] = LOOPBACK_NAMES,
    token: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decodes: int = DEFAULT_MAX_DECODES,
    device: str | None = None,
) -> FastAPI:
    """The app for ``run_dir`` (a run with probed heads; ``chestclip evaluate`` supplies the
    thresholds, ``chestclip retrieve`` the index of training reports), its model on ``device``
    (default: CUDA when available). ``predictor``: an already loaded one for that run.
    ``hosts``: the Host header names it answers to; ``token``: the bearer token ``/api/``
    requires (None: none)."""
    predictor = predictor or Predictor.load(run_dir, device)
    card = without_paths(model_card_facts(predictor.run))
    decode_slots = threading.BoundedSemaphore(max_decodes)
    app = FastAPIOffline(
        title="chestclip",
        version=__version__,
        description="P(diseased), heat map, ROI zones and nearest training reports for a chest "
        "X-ray. Research use only: not a medical device.",
    )
    # the last added runs first: Host, then Origin and token, then the size of the body
    app.add_middleware(UploadLimit, max_bytes=max_upload_bytes)
    app.add_middleware(RequestGuard, token=token)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(hosts), www_redirect=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(ChestClipError)
    async def bad_input(request: Request, error: ChestClipError) -> JSONResponse:
        return JSONResponse({"detail": strip_paths(one_line(str(error)))}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'][1:]) or 'request'}: {e['msg']}"
            for e in error.errors()
        )
        return JSONResponse({"detail": one_line(problems)}, status_code=422)

    # Starlette re-raises the exception after this answer, so the server logs its traceback
    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": f"internal error ({type(error).__name__}); see the server log"},
            status_code=500,
            headers={"Connection": "close"},  # uvicorn drops the connection after it
        )

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/api/health")
    def health() -> Health:
        return Health(status="ok", run=predictor.run.name, version=__version__)

    @app.get("/api/model")
    def model() -> ModelInfo:
        guard = predictor.trust.guard
        return ModelInfo(
            run=predictor.run.name,
            image_size=predictor.image_size,
            heads=[
                HeadInfo(
                    name=name,
                    needs_indication=not reads_new_images(explainer.info, indication=False),
                    threshold=predictor.thresholds.get(name),
                )
                for name, explainer in predictor.explainers.items()
            ],
            methods=predictor.methods,
            default_method=predictor.default_method,
            retrieval_index=predictor.index is not None,
            ood_guard=None
            if guard is None
            else {"method": guard.method, "threshold": guard.thresholds[guard.method]},
            max_upload_bytes=max_upload_bytes,
            card=card,
            findings={
                name: list(head.finding_names)
                for name, (head, _) in predictor.findings.heads.items()
            },
        )

    @app.post("/api/predict", responses=ERRORS)
    def predict(
        file: Annotated[UploadFile, File(description="PNG, JPEG or DICOM")],
        indication: Annotated[
            str | None,
            Form(description="enables the indication-only heads", max_length=MAX_INDICATION_CHARS),
        ] = None,
        method: Annotated[
            str | None, Form(description="heat-map method [the model's default]")
        ] = None,
        allow_ood: Annotated[
            bool, Form(description="score a flagged image anyway (it stays flagged)")
        ] = False,
    ) -> PredictResult:
        name = display_name(file.filename)
        with stored_upload(file.file.read(), name) as path, decode_slots:
            try:
                image = predictor.read(path, max_pixels)
            except ImageReadError as error:
                problem = str(error).removeprefix(f"{path}: ")
                raise ImageReadError(f"{name}: {problem}") from None
        indication = (indication or "").strip() or None
        found = predictor.predict(
            image, indication, method or None, drafts, allow_ood, heatmap=True
        )
        heatmap, zones = found.heatmap, found.zones
        return PredictResult(
            file=name,
            probabilities=found.probabilities,
            thresholds=found.thresholds,
            decisions=found.decisions,
            trust=Trust(**found.verdict.as_dict()),
            explained_head=found.explained_head,
            method=found.method,
            zones=zones.source if zones else None,
            zone_masses={
                zone: None if math.isnan(share) else share
                for zone, share in found.zone_masses.items()
            },
            top_zones=found.top_zones,
            image_png=png_base64(image),
            heatmap_png=None if heatmap is None else png_base64(coloured_heatmap(heatmap)),
            zones_png=png_base64(zone_outlines(zones)) if zones and heatmap is not None else None,
            overlay_png=None
            if heatmap is None
            else png_base64(blended_overlay(image, heatmap, zones=zones)),
            drafts=[
                Draft(
                    rank=int(d["rank"]),
                    uid=str(d["uid"]),
                    similarity=float(d["similarity"]),
                    findings=str(d["findings"]),
                    impression=str(d["impression"]),
                )
                for d in found.drafts
            ],
            findings=found.findings,
        )

    return app
