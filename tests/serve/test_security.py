"""A server a browser can reach: Host allow-list (DNS rebinding), same-origin POSTs only, the
bearer token, no server paths in answers, upload names that cannot disguise themselves."""

import json
import sys
import tempfile

import pytest
from fastapi.testclient import TestClient

import chestclip.serve.server as server
from chestclip.cli import main
from chestclip.errors import ChestClipError
from chestclip.serve import create_app
from chestclip.serve.security import allowed_hosts, strip_paths
from chestclip.serve.uploads import display_name

pytestmark = pytest.mark.slow
TOKEN = "correct-horse-battery-staple"


def post_png(client: TestClient, xray_files, **headers):
    files = {"file": ("a.png", xray_files["png"].read_bytes(), "image/png")}
    return client.post("/api/predict", files=files, headers=headers)


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "10.0.0.7"])
def test_a_foreign_host_header_is_refused(client, host):
    """A page on attacker.example whose name re-resolves to 127.0.0.1 (DNS rebinding) sends its
    own name as Host: it must not reach the API (and read the nearest training reports)."""
    response = client.get("/api/model", headers={"Host": host})
    assert response.status_code == 400 and response.text == "Invalid host header"


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:1234", "[::1]:8000"])
def test_loopback_host_headers_are_answered(client, host):
    assert client.get("/api/health", headers={"Host": host}).status_code == 200


def test_allowed_hosts_follow_the_bind_address_and_the_option():
    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost", "[::1]"]
    assert allowed_hosts("0.0.0.0", ["XRay.lab"])[-1] == "xray.lab"  # a wildcard is no name
    assert allowed_hosts("192.168.1.5")[-1] == "192.168.1.5"
    assert allowed_hosts("fe80::1")[-1] == "[fe80::1]"


def test_a_cross_origin_post_is_refused(client, xray_files):
    """A web page elsewhere can make the browser POST a form to a loopback server."""
    response = post_png(client, xray_files, Origin="https://attacker.example")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "cross-origin request refused (Origin https://attacker.example)"
    }
    response = post_png(client, xray_files, **{"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403


def test_same_origin_and_non_browser_posts_are_answered(client, xray_files):
    assert post_png(client, xray_files, Origin="http://localhost").status_code == 200
    assert post_png(client, xray_files).status_code == 200  # curl, httpx: no Origin


@pytest.fixture(scope="module")
def guarded(evaluated_run, predictor) -> TestClient:
    return TestClient(
        create_app(evaluated_run, predictor=predictor, token=TOKEN), base_url="http://localhost"
    )


def test_with_a_token_the_api_needs_it(guarded, xray_files):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = guarded.get("/api/model", headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert post_png(guarded, xray_files, **headers).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/api/model", headers=right).status_code == 200
    assert post_png(guarded, xray_files, **right).status_code == 200
    assert guarded.get("/").status_code == 200  # the page itself holds no data


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["chestclip", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


def test_listening_beyond_loopback_needs_a_token(monkeypatch, capsys, tmp_path):
    served = []
    monkeypatch.setattr(server.uvicorn.Server, "run", lambda self: served.append(self))
    monkeypatch.delenv("CHESTCLIP_SERVE_TOKEN", raising=False)
    code, error = run_cli(monkeypatch, capsys, "serve", "--run", str(tmp_path), "--host", "0.0.0.0")
    assert code == 1 and served == [] and len(error.strip().splitlines()) == 1
    assert error.startswith("chestclip: error: listening on 0.0.0.0 needs a token")
    with pytest.raises(ChestClipError, match="needs a token"):
        server.serve(tmp_path, host="192.168.1.5", token="")


def test_answers_name_no_server_path(client, evaluated_run, xray_files):
    """The model card names the data's source folder; the API shows only its last part."""
    model = client.get("/api/model").text
    result = post_png(client, xray_files).text
    for folder in (evaluated_run.parent.resolve(), tempfile.gettempdir()):
        assert str(folder) not in model and str(folder) not in result
    source = json.loads(model)["card"]["data"]["source"]
    assert source and "/" not in source


def test_paths_are_stripped_from_messages():
    assert strip_paths("/srv/runs/demo/run: no head") == "run: no head"
    assert strip_paths("C:\\Users\\me\\run: x") == "run: x"
    assert strip_paths("see http://host/a/b and 1/2") == "see http://host/a/b and 1/2"


@pytest.mark.parametrize(
    ("filename", "shown"),
    [
        ("invoice\u202egnp.exe", "invoicegnp.exe"),  # right-to-left override: shows "exe.png"
        ("a\u200bb\u2066c.png", "abc.png"),  # zero-width space, isolate
        ("scan\u2028.png", "scan.png"),  # line separator
        ("\u202e", "upload"),
    ],
)
def test_upload_names_lose_bidi_and_invisible_characters(filename, shown):
    assert display_name(filename) == shown
