"""The app served by uvicorn on a loopback port: concurrent clients get the serial answers."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from chestclip.serve import ServerThread, create_app
from chestclip.serve.server import is_loopback

pytestmark = pytest.mark.slow


def test_concurrent_requests_get_the_serial_answers(evaluated_run, predictor, xray_files):
    kinds = ["png", "mono1", "png16", "jpeg"]
    app = create_app(evaluated_run, predictor=predictor)
    with ServerThread(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert url.startswith("http://127.0.0.1:")

        def post(kind: str) -> dict:
            data = xray_files[kind].read_bytes()
            response = client.post("/api/predict", files={"file": (kind, data)})
            assert response.status_code == 200, response.text
            return response.json()["probabilities"]

        serial = {kind: post(kind) for kind in kinds}
        with ThreadPoolExecutor(max_workers=4) as pool:
            parallel = list(pool.map(post, kinds * 3))
    for kind, probabilities in zip(kinds * 3, parallel, strict=True):
        assert probabilities == pytest.approx(serial[kind], abs=1e-6)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("192.168.1.4", False), ("example.org", False)],
)  # fmt: skip
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback
