"""The API refuses what the run never saw, says why, and draws the zones used (fixtures:
tests/conftest.py and tests/serve/conftest.py; the page's banner: test_browser.py)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from chestclip.phantom.outliers import photo
from chestclip.serve.images import blended_overlay, zone_outlines

pytestmark = pytest.mark.slow


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def decoded(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


PHOTO = png(photo(np.random.default_rng(0), 300))  # a photograph-like scene, not an X-ray


def predict(client, data: bytes, **form):
    response = client.post("/api/predict", files={"file": ("a.png", data, "image/png")}, data=form)
    assert response.status_code == 200, response.text
    return response.json()


def test_model_names_its_guard(client):
    guard = client.get("/api/model").json()["ood_guard"]
    assert guard["method"] == "pixels+mahalanobis" and guard["threshold"] > 0


def test_a_photograph_gets_no_decision_and_no_heat_map(client):
    result = predict(client, PHOTO)
    assert result["trust"]["refused"] and result["trust"]["reasons"][0].startswith("out of")
    assert result["probabilities"] == {"image": None} and result["decisions"] == {"image": None}
    assert result["heatmap_png"] is None and result["overlay_png"] is None
    assert result["zones"] is None and result["zone_masses"] == {} and result["drafts"] == []
    allowed = predict(client, PHOTO, allow_ood="true")
    assert allowed["trust"]["flagged"] and not allowed["trust"]["refused"]
    assert allowed["probabilities"]["image"] is not None and allowed["heatmap_png"]


def test_a_frontal_film_shows_the_zones_used(client, predictor, xray_files):
    result = predict(client, xray_files["png"].read_bytes())
    assert not result["trust"]["flagged"] and result["zones"] == "anatomy"
    image = predictor.read(xray_files["png"])
    found = predictor.predict(image)
    np.testing.assert_array_equal(decoded(result["zones_png"]), zone_outlines(found.zones))
    np.testing.assert_array_equal(
        decoded(result["overlay_png"]), blended_overlay(image, found.heatmap, zones=found.zones)
    )
