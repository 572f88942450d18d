"""Decompression bombs against a real `chestclip serve` (a child process on loopback, its memory
read from /proc): a dozen at once leave its peak resident memory within a stated bound, and valid
requests sent meanwhile are still answered."""

import os
import resource
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from chestclip.phantom.bombs import write_deflated_dicom_bomb, write_png_bomb
from chestclip.serve.server import ServerProcess
from chestclip.utils.memory import reset_peak, resident_bytes

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads Linux's /proc"),
]

SIDE = 13_000  # 169 MP: a 329 KB PNG that decodes to 2.5 GB; a DICOM that inflates to 338 MB
PEAK_BOUND = 250 * 2**20  # the most the server's resident memory may grow under the bomb mix
# the child's address space is capped too, so that a regression fails instead of exhausting the
# machine (a dozen such bombs took over 20 GB)
ADDRESS_SPACE = 8 * 2**30


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("bombs")
    return [
        write_png_bomb(folder / "bomb.png", SIDE),
        write_deflated_dicom_bomb(folder / "bomb.dcm", SIDE),
    ]


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def test_a_dozen_bombs_at_once_keep_the_server_small_and_answering(
    evaluated_run, xray_files, bombs
):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    server = ServerProcess(evaluated_run, env=env, preexec_fn=_cap_address_space)
    with server as url, httpx.Client(base_url=url, timeout=120) as client:

        def post(path: Path) -> httpx.Response:
            files = {"file": (path.name, path.read_bytes())}
            return client.post("/api/predict", files=files)

        assert post(xray_files["png"]).status_code == 200  # warm: the model has run once
        pid = server.process.pid
        reset_peak(pid)
        before, _ = resident_bytes(pid)
        uploads = [bombs[i % 2] for i in range(12)] + [xray_files["png"]] * 4
        with ThreadPoolExecutor(len(uploads)) as pool:
            responses = list(pool.map(post, uploads))
        _, peak = resident_bytes(pid)
        for path, response in zip(uploads, responses, strict=True):
            if path in bombs:
                assert response.status_code == 400, response.text
                detail = response.json()["detail"]
                assert detail.startswith(f"{path.name}: "), detail
                assert "exceed the limit" in detail or "inflates to more than" in detail
            else:
                assert response.status_code == 200, response.text
        assert post(xray_files["png"]).status_code == 200  # and afterwards
    grown = peak - before
    assert grown < PEAK_BOUND, f"peak resident memory grew by {grown / 2**20:.0f} MiB"
