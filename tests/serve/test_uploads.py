"""The upload size limit (on the bytes that arrive, not the declared length), display names and
the temporary file, on a bare Starlette app: no model needed."""

import tempfile

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from chestclip.serve.uploads import UploadLimit, display_name, stored_upload

LIMIT = 1000


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"received": len(await request.body())})


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = Starlette(routes=[Route("/", echo_size, methods=["GET", "POST"])])
    app.add_middleware(UploadLimit, max_bytes=LIMIT)
    return TestClient(app)


def chunks(size: int, chunk: int = 300):
    for start in range(0, size, chunk):
        yield b"x" * min(chunk, size - start)


@pytest.mark.parametrize("size", [0, 1, LIMIT])
def test_bodies_up_to_the_limit_pass_whole(client, size):
    assert client.post("/", content=b"x" * size).json() == {"received": size}
    assert client.post("/", content=chunks(size)).json() == {"received": size}


def test_a_declared_length_over_the_limit_is_refused(client):
    response = client.post("/", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json() == {"detail": "upload too large: the limit is 1,000 bytes"}


def test_a_chunked_body_without_a_length_is_counted(client):
    request = client.build_request("POST", "/", content=chunks(LIMIT + 1))
    assert "content-length" not in request.headers  # nothing declared: only counting can tell
    assert client.send(request).status_code == 413


def test_get_is_not_buffered(client):
    assert client.get("/").json() == {"received": 0}


@pytest.mark.parametrize(
    ("filename", "shown"),
    [
        ("scan.png", "scan.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\x ray.dcm", "x ray.dcm"),
        ("bad\x00na\nme.png", "badname.png"),
        ("..", "upload"),
        (None, "upload"),
        ("a" * 500, "a" * 120),
    ],
)
def test_display_names_never_carry_a_folder(filename, shown):
    assert display_name(filename) == shown


@pytest.mark.parametrize(
    ("name", "stored"), [("x.PNG", "upload.png"), ("x.dcm", "upload.dcm"), ("x.exe", "upload")]
)
def test_stored_upload_lives_only_in_its_temporary_directory(tmp_path, monkeypatch, name, stored):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with stored_upload(b"data", name) as path:
        assert path.name == stored and path.read_bytes() == b"data"
        assert path.parent.parent == tmp_path and path.parent.name.startswith("chestclip-upload-")
    assert list(tmp_path.iterdir()) == []
