"""The JSON API with FastAPI's TestClient: every upload format, bad uploads, limits, docs."""

import base64
import io
import tempfile

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from chestclip.errors import ChestClipError
from chestclip.inference.predict import validation_thresholds
from chestclip.serve import create_app
from chestclip.serve.app import STATIC
from chestclip.serve.images import blended_overlay

pytestmark = pytest.mark.slow
LOCAL = "http://localhost"


def upload(client, path_or_bytes, name=None, **form):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    name = name or getattr(path_or_bytes, "name", "upload")
    return client.post("/api/predict", files={"file": (name, data, "image/png")}, data=form)


def decoded(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_health(client):
    assert client.get("/api/health").json() == {"status": "ok", "run": "run", "version": "0.1.0"}


def test_model_lists_heads_thresholds_methods_and_card(client, evaluated_run):
    info = client.get("/api/model").json()
    thresholds = validation_thresholds(evaluated_run)
    assert {h["name"]: (h["needs_indication"], h["threshold"]) for h in info["heads"]} == {
        "image": (False, thresholds["image"]),
        "multimodal_indication": (True, thresholds["multimodal_indication"]),
    }
    assert info["methods"] == ["cnn-gradcam"] and info["default_method"] == "cnn-gradcam"
    assert info["image_size"] == 64 and info["retrieval_index"] is True
    assert info["card"]["heads"]["image"]["threshold"] == thresholds["image"]
    assert info["notice"].startswith("Research use only")


def test_png_prediction_equals_the_library(client, predictor, xray_files):
    response = upload(client, xray_files["png"])
    assert response.status_code == 200, response.text
    result = response.json()
    image = predictor.read(xray_files["png"])
    expected = predictor.predict(image)
    assert result["file"] == "a.png"
    assert result["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    assert result["thresholds"] == expected.thresholds and result["decisions"] == expected.decisions
    threshold, probability = result["thresholds"]["image"], result["probabilities"]["image"]
    assert result["decisions"]["image"] == ("diseased" if probability >= threshold else "normal")
    assert result["explained_head"] == "image" and result["method"] == "cnn-gradcam"
    assert result["zone_masses"] == pytest.approx(expected.zone_masses)
    assert sum(result["zone_masses"].values()) == pytest.approx(1.0)
    assert [zone for zone, _ in result["top_zones"]] == [z for z, _ in expected.top_zones]
    # the images: the grey model input, the coloured map, and both blended as the figures do
    np.testing.assert_array_equal(decoded(result["image_png"]), image)
    assert decoded(result["heatmap_png"]).shape == (64, 64, 3)
    np.testing.assert_array_equal(
        decoded(result["overlay_png"]),
        blended_overlay(image, expected.heatmap, zones=expected.zones),
    )
    similarities = [d["similarity"] for d in result["drafts"]]
    assert len(similarities) == 3 and similarities == sorted(similarities, reverse=True)
    assert result["drafts"] == [
        {**d, "similarity": pytest.approx(d["similarity"], abs=1e-6)} for d in expected.drafts
    ]


@pytest.mark.parametrize(
    ("kind", "tolerance"), [("png16", 1e-4), ("mono2", 1e-4), ("mono1", 1e-4), ("jpeg", 0.05)]
)
def test_other_formats_give_the_png_probability(client, xray_files, kind, tolerance):
    reference = upload(client, xray_files["png"]).json()["probabilities"]["image"]
    response = upload(client, xray_files[kind])
    assert response.status_code == 200, response.text
    assert response.json()["probabilities"]["image"] == pytest.approx(reference, abs=tolerance)


def test_indication_runs_and_explains_the_indication_head(client, predictor, xray_files):
    result = upload(client, xray_files["png"], indication="  Cough and fever. ").json()
    expected = predictor.predict(predictor.read(xray_files["png"]), "Cough and fever.")
    assert set(result["probabilities"]) == {"image", "multimodal_indication"}
    assert result["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
    assert result["explained_head"] == "multimodal_indication"


@pytest.mark.parametrize(
    ("data", "name", "problem"),
    [
        (b"just some notes, not an image", "notes.png", "notes.png: not a PNG, JPEG or DICOM file"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "scan.pdf", "scan.pdf: not a PNG, JPEG or DICOM"),
        (b"", "empty.dcm", "empty.dcm: empty file"),
    ],
)
def test_wrong_type_is_a_400_naming_the_upload(client, data, name, problem):
    response = upload(client, data, name)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(problem)


def test_corrupt_image_is_a_one_line_400_without_server_paths(client, xray_files):
    response = upload(client, xray_files["corrupt"])
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("f.png: truncated or corrupt") and "\n" not in detail
    assert "chestclip-upload" not in detail and tempfile.gettempdir() not in detail


def test_oversize_upload_is_a_413(evaluated_run, predictor, xray_files):
    small = TestClient(
        create_app(evaluated_run, max_upload_bytes=1024, predictor=predictor), base_url=LOCAL
    )
    assert xray_files["png"].stat().st_size > 1024
    response = upload(small, xray_files["png"])
    assert response.status_code == 413
    assert response.json()["detail"] == "upload too large: the limit is 1,024 bytes"
    assert small.get("/api/model").json()["max_upload_bytes"] == 1024


def test_the_upload_is_stored_only_in_a_removed_temporary_directory(
    client, predictor, xray_files, tmp_path, monkeypatch
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    read, seen = predictor.read, []
    monkeypatch.setattr(predictor, "read", lambda path, *cap: seen.append(path) or read(path, *cap))
    response = upload(client, xray_files["png"], name="../../../../tmp/evil.png")
    assert response.status_code == 200 and response.json()["file"] == "evil.png"
    (path,) = seen
    assert path.name == "upload.png" and path.parent.parent == tmp_path
    assert list(tmp_path.iterdir()) == []  # the directory and the file are gone


def test_unknown_method_and_missing_file(client, xray_files):
    response = upload(client, xray_files["png"], method="rollout")
    assert response.status_code == 400 and "choose one of: cnn-gradcam" in response.json()["detail"]
    response = client.post("/api/predict", data={"indication": "cough"})
    assert response.status_code == 422 and response.json() == {"detail": "file: Field required"}


def test_a_bug_is_a_500_without_traceback(evaluated_run, predictor, xray_files, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret detail\nTraceback (most recent call last)")

    monkeypatch.setattr(predictor, "predict", broken)
    app = create_app(evaluated_run, predictor=predictor)
    client = TestClient(app, raise_server_exceptions=False, base_url=LOCAL)
    response = upload(client, xray_files["png"])
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (RuntimeError); see the server log"}


def test_docs_and_openapi_work_offline(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static-offline-docs/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/health", "/api/model"} <= set(spec["paths"])
    body = spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    assert {"400", "413", "200"} <= set(spec["paths"]["/api/predict"]["post"]["responses"])


def test_page_and_its_files_are_served_and_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and "Research use only" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("index.html", "app.js", "style.css"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200
        assert (STATIC / name).read_text() == response.text
        assert "http://" not in response.text and "https://" not in response.text  # no CDN


def test_a_long_indication_is_refused_before_the_model(client, xray_files):
    """840 KB of indication held the model lock for seconds; real ones are under 250 chars."""
    response = upload(client, xray_files["png"], indication="cough " * 140_000)
    assert response.status_code == 422
    assert response.json()["detail"] == "indication: String should have at most 2000 characters"
    assert upload(client, xray_files["png"], indication="c" * 2000).status_code == 200


def test_the_indication_is_cleaned_outside_the_model_lock(predictor, xray_files, monkeypatch):
    import chestclip.inference.predict as predict_module

    clean, locked = predict_module.clean_text, []
    monkeypatch.setattr(
        predict_module,
        "clean_text",
        lambda text, mode: locked.append(predictor._lock.locked()) or clean(text, mode),
    )
    predictor.predict(predictor.read(xray_files["png"]), "Cough and fever.", drafts=0)
    assert locked == [False]
    with pytest.raises(ChestClipError, match="indication of 2,001 characters: at most 2,000"):
        predictor.predict(predictor.read(xray_files["png"]), "c" * 2001)


@pytest.mark.parametrize(
    "kind", ["slope-text", "window-text", "short-voi-lut", "short-modality-lut"]
)
def test_a_malformed_dicom_is_a_400_naming_the_upload(client, malformed_dicoms, kind):
    response = upload(client, malformed_dicoms[kind], name=f"{kind}.dcm")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{kind}.dcm: malformed DICOM")


def test_at_most_max_decodes_uploads_are_decoded_at_once(
    evaluated_run, predictor, xray_files, monkeypatch
):
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    read, active, most = predictor.read, [0], [0]
    guard = threading.Lock()

    def slow_read(path, max_pixels):
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.2)
        try:
            return read(path, max_pixels)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(predictor, "read", slow_read)
    app = create_app(evaluated_run, predictor=predictor, max_decodes=2)
    with TestClient(app, base_url=LOCAL) as client, ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda _: upload(client, xray_files["png"]).status_code, range(6)))
    assert codes == [200] * 6 and most[0] == 2
