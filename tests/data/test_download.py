"""chestclip download: against a Range-capable HTTP server on 127.0.0.1 that each test starts."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from chestclip.data import download
from chestclip.data.download import (
    DownloadError,
    download_iu_xray,
    extract_archive,
    parse_sha256,
)

pytestmark = pytest.mark.timeout(30)

REPORTS, PNGS = "NLMCXR_reports.tgz", "NLMCXR_png.tgz"
REPORT_XML = b"<?xml version='1.0'?><eCitation><uId id='CXR1'/></eCitation>\n"
PNG_NAMES = ("CXR1_1_IM-0001-3001.png", "CXR1_1_IM-0001-4001.png")


@dataclass
class Server:
    """What the test server serves and how it misbehaves; ``requests`` records what it got."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    drop_after: int | None = None  # first GET: close the connection after this many body bytes
    ignore_range: bool = False
    head_allowed: bool = True
    status: int | None = None  # answer every request with this error status
    stall: bool = False  # never answer (until the test ends)
    released: threading.Event = field(default_factory=threading.Event)
    base_url: str = ""

    def gets(self) -> list[str | None]:
        """The Range header of every GET, in order (None: no Range)."""
        return [range_ for method, _, range_ in self.requests if method == "GET"]


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            server.requests.append((self.command, self.path, self.headers.get("Range")))
            if server.stall:
                server.released.wait(10)
                return
            data = server.files.get(self.path.rsplit("/", 1)[-1])
            if server.status or data is None or (not body and not server.head_allowed):
                status = server.status or (404 if data is None else 405)
                self.send_error(status)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match and not server.ignore_range:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if not body:
                return
            if server.drop_after is not None:
                limit, server.drop_after = server.drop_after, None
                self.wfile.write(data[start : start + limit])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(data[start:])

    return Handler


@pytest.fixture
def server():
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/imgs/collections"
    yield state
    state.released.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _no_retry_delay(monkeypatch):
    monkeypatch.setattr(download, "RETRY_DELAY_S", 0.0)


def _tgz(members: dict[str, bytes], dirs: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def archives() -> dict[str, bytes]:
    """The OpenI layouts: reports under ``ecgen-radiology/``, PNGs at the top of their archive."""
    reports = _tgz(
        {"ecgen-radiology/1.xml": REPORT_XML, "ecgen-radiology/2.xml": REPORT_XML},
        dirs=("ecgen-radiology",),
    )
    pngs = _tgz({name: _png(i) for i, name in enumerate(PNG_NAMES)})
    return {REPORTS: reports, PNGS: pngs}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_downloads_verifies_and_extracts(server, archives, tmp_path):
    server.files = archives
    dest = tmp_path / "iu"
    result = download_iu_xray(
        dest,
        server.base_url,
        files=(REPORTS, PNGS),
        expected={REPORTS: _sha(archives[REPORTS])},
        timeout=5,
    )
    for item in result.files:
        assert item.status == "downloaded"
        assert item.path.read_bytes() == archives[item.name]
        assert (item.sha256, item.size) == (_sha(archives[item.name]), len(archives[item.name]))
    reports, pngs = result.files
    assert reports.extracted_to == dest / "ecgen-radiology"
    assert (dest / "ecgen-radiology/1.xml").read_bytes() == REPORT_XML
    assert pngs.extracted_to == dest / "NLMCXR_png"
    assert sorted(p.name for p in (dest / "NLMCXR_png").glob("[!.]*")) == sorted(PNG_NAMES)
    with Image.open(dest / "NLMCXR_png" / PNG_NAMES[0]) as image:
        assert image.size == (48, 48)
    visible = sorted(p.name for p in dest.iterdir() if not p.name.startswith("."))
    assert visible == sorted([REPORTS, PNGS, "ecgen-radiology", "NLMCXR_png"])  # no .part/.tmp
    assert [m for m, _, _ in server.requests] == ["HEAD", "GET", "HEAD", "GET"]
    assert server.gets() == [None, None]


def test_progress_bars_and_describe(server, archives, tmp_path, capsys):
    server.files = archives
    result = download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), timeout=5)
    assert REPORTS in capsys.readouterr().err  # the tqdm bar
    assert result.files[0].describe().startswith(f"{REPORTS}: downloaded, ")


def test_dropped_connection_resumes_with_range(server, archives, tmp_path):
    server.files, server.drop_after = archives, 300
    result = download_iu_xray(
        tmp_path, server.base_url, files=(PNGS,), extract=False, progress=False, timeout=5
    )
    assert server.gets() == [None, "bytes=300-"]
    assert (tmp_path / PNGS).read_bytes() == archives[PNGS]
    assert result.files[0].status == "resumed"
    assert result.files[0].sha256 == _sha(archives[PNGS])
    assert not (tmp_path / f"{PNGS}.part").exists()


def test_dropped_connection_without_retries_keeps_the_part(server, archives, tmp_path):
    server.files, server.drop_after = archives, 300
    with pytest.raises(DownloadError, match="transfer broken at byte 300 of") as info:
        download_iu_xray(tmp_path, server.base_url, files=(PNGS,), progress=False, retries=0)
    assert "\n" not in str(info.value) and "run again to resume" in str(info.value)
    assert (tmp_path / f"{PNGS}.part").read_bytes() == archives[PNGS][:300]
    assert not (tmp_path / PNGS).exists()


def test_leftover_part_is_resumed(server, archives, tmp_path):
    server.files = archives
    half = len(archives[REPORTS]) // 2
    (tmp_path / f"{REPORTS}.part").write_bytes(archives[REPORTS][:half])
    result = download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), progress=False)
    assert server.gets() == [f"bytes={half}-"]
    assert (tmp_path / REPORTS).read_bytes() == archives[REPORTS]
    assert result.files[0].status == "resumed"
    assert result.files[0].sha256 == _sha(archives[REPORTS])


def test_server_ignoring_range_restarts_from_zero(server, archives, tmp_path):
    server.files, server.ignore_range = archives, True
    (tmp_path / f"{REPORTS}.part").write_bytes(b"x" * 100)  # not even the right bytes
    result = download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), progress=False)
    assert server.gets() == ["bytes=100-"]
    assert (tmp_path / REPORTS).read_bytes() == archives[REPORTS]
    assert result.files[0].status == "downloaded"


@pytest.mark.parametrize("head_allowed", [True, False])
def test_complete_part_is_finished_without_refetching(server, archives, tmp_path, head_allowed):
    server.files, server.head_allowed = archives, head_allowed
    (tmp_path / f"{REPORTS}.part").write_bytes(archives[REPORTS])
    result = download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), progress=False)
    # with HEAD the size is known and no GET is needed; without, the ranged GET gets a 416
    assert server.gets() == ([] if head_allowed else [f"bytes={len(archives[REPORTS])}-"])
    assert (tmp_path / REPORTS).read_bytes() == archives[REPORTS]
    assert result.files[0].status == "resumed"


def test_part_longer_than_the_file_restarts(server, archives, tmp_path):
    server.files = archives
    (tmp_path / f"{REPORTS}.part").write_bytes(archives[REPORTS] + b"junk")
    result = download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), progress=False)
    assert server.gets() == [None]
    assert result.files[0].path.read_bytes() == archives[REPORTS]


def test_checksum_mismatch_keeps_corrupt_file(server, archives, tmp_path):
    server.files = archives
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        download_iu_xray(
            tmp_path, server.base_url, files=(REPORTS,), progress=False, expected={REPORTS: wrong}
        )
    message = str(info.value)
    assert "\n" not in message
    assert REPORTS in message and wrong in message and _sha(archives[REPORTS]) in message
    assert (tmp_path / f"{REPORTS}.corrupt").read_bytes() == archives[REPORTS]
    assert not (tmp_path / REPORTS).exists()
    assert not (tmp_path / f"{REPORTS}.part").exists()
    assert not (tmp_path / "ecgen-radiology").exists()


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_is_one_line(server, tmp_path, status):
    server.status = status
    with pytest.raises(DownloadError, match=f"HTTP {status}") as info:
        download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), progress=False)
    assert f"{server.base_url}/{REPORTS}" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_404(server, archives, tmp_path):
    server.files = {REPORTS: archives[REPORTS]}
    with pytest.raises(DownloadError, match=rf"/{PNGS}: HTTP 404"):
        download_iu_xray(tmp_path, server.base_url, files=(REPORTS, PNGS), progress=False)
    assert (tmp_path / REPORTS).is_file()  # what came before the failure is kept


def test_connection_refused(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(DownloadError, match="connection failed") as info:
        download_iu_xray(tmp_path, f"http://127.0.0.1:{port}/x", files=(REPORTS,), progress=False)
    assert f"127.0.0.1:{port}/x/{REPORTS}" in str(info.value) and "\n" not in str(info.value)


def test_timeout(server, tmp_path):
    server.stall = True
    with pytest.raises(DownloadError, match="timed out"):
        download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), progress=False, timeout=0.3)


def test_already_downloaded_is_skipped_and_not_reextracted(server, archives, tmp_path):
    server.files = archives
    download_iu_xray(tmp_path, server.base_url, files=(REPORTS, PNGS), progress=False)
    (tmp_path / "ecgen-radiology/note.txt").write_text("kept: no second extraction")
    again = download_iu_xray(
        tmp_path,
        server.base_url,
        files=(REPORTS, PNGS),
        progress=False,
        expected={PNGS: _sha(archives[PNGS])},
    )
    assert [f.status for f in again.files] == ["skipped", "skipped"]
    assert [f.sha256 for f in again.files] == [_sha(archives[REPORTS]), _sha(archives[PNGS])]
    assert len(server.gets()) == 2  # only the first call's
    assert (tmp_path / "ecgen-radiology/note.txt").is_file()
    assert again.files[1].extracted_to == tmp_path / "NLMCXR_png"


def test_stale_final_file_is_replaced(server, archives, tmp_path):
    server.files = archives
    (tmp_path / REPORTS).write_bytes(b"y" * len(archives[REPORTS]))  # right size, wrong bytes
    result = download_iu_xray(
        tmp_path,
        server.base_url,
        files=(REPORTS,),
        progress=False,
        expected={REPORTS: _sha(archives[REPORTS])},
    )
    assert result.files[0].status == "downloaded"
    assert (tmp_path / REPORTS).read_bytes() == archives[REPORTS]


def test_not_enough_disk_space(server, archives, tmp_path, monkeypatch):
    server.files = archives
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: SimpleNamespace(free=10))
    with pytest.raises(DownloadError, match=r"bytes needed for NLMCXR_reports\.tgz\.part, 10 free"):
        download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), progress=False)
    assert server.gets() == []


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([("../evil.txt", b"x")], "'..' path component"),
        ([("ok/../../evil.txt", b"x")], "'..' path component"),
        ([("/tmp/chestclip-evil.txt", b"x")], "absolute path"),
        ([_symlink("link", "../outside")], "symbolic link"),
        ([_symlink("a", "."), _symlink("a/b", "..")], "symbolic link"),  # chain out of DEST
        ([_symlink("up", "/etc")], "symbolic link"),
    ],
)
def test_unsafe_member_is_refused(tmp_path, members, problem):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.addfile(*_file("safe.txt", b"fine"))
        for member in members:
            tar.addfile(*(_file(*member) if isinstance(member, tuple) else (member,)))
    archive = tmp_path / "evil.tgz"
    archive.write_bytes(buffer.getvalue())
    dest = tmp_path / "dest"
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(DownloadError, match=problem) as info:
        extract_archive(archive, dest)
    assert "nothing was extracted" in str(info.value) and "\n" not in str(info.value)
    assert list(dest.iterdir()) == []  # no half-tree, no temporary directory
    assert sorted(p for p in tmp_path.rglob("*") if p != dest) == before
    assert not Path("/tmp/chestclip-evil.txt").exists()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def test_unsafe_archive_from_the_server_is_refused(server, tmp_path):
    server.files = {REPORTS: _tgz({"ecgen-radiology/1.xml": REPORT_XML, "../evil.xml": b"x"})}
    with pytest.raises(DownloadError, match=r"refused member '\.\./evil\.xml'"):
        download_iu_xray(tmp_path / "dest", server.base_url, files=(REPORTS,), progress=False)
    assert not (tmp_path / "evil.xml").exists()
    assert not (tmp_path / "dest/ecgen-radiology").exists()


def test_corrupt_archive_cannot_be_extracted(tmp_path):
    archive = tmp_path / PNGS
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DownloadError, match=f"{PNGS}: cannot extract"):
        extract_archive(archive, tmp_path / "dest")


def test_reextraction_replaces_the_directory_whole(tmp_path, archives):
    archive = tmp_path / REPORTS
    archive.write_bytes(archives[REPORTS])
    assert extract_archive(archive, tmp_path) == tmp_path / "ecgen-radiology"
    (tmp_path / "ecgen-radiology/stale.xml").write_bytes(b"old")
    assert extract_archive(archive, tmp_path) == tmp_path / "ecgen-radiology"
    assert sorted(p.name for p in (tmp_path / "ecgen-radiology").glob("[!.]*")) == [
        "1.xml",
        "2.xml",
    ]


def test_an_archive_cannot_choose_where_it_lands(server, tmp_path):
    """An archive whose top folder is ``.ssh``, extracted into a home directory, replaced the
    user's ``.ssh``: now its content goes into the folder the tool names, and nothing else in
    DEST is written."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh/id_rsa").write_bytes(b"private key")
    (home / ".ssh/authorized_keys").write_bytes(b"the user's keys")
    evil = {".ssh/authorized_keys": b"the attacker's key", ".ssh/1.xml": REPORT_XML}
    server.files = {REPORTS: _tgz(evil, dirs=(".ssh",))}
    result = download_iu_xray(home, server.base_url, files=(REPORTS,), progress=False)
    assert result.files[0].extracted_to == home / "ecgen-radiology"
    assert (home / ".ssh/id_rsa").read_bytes() == b"private key"
    assert (home / ".ssh/authorized_keys").read_bytes() == b"the user's keys"
    assert (home / "ecgen-radiology/.ssh/authorized_keys").read_bytes() == b"the attacker's key"


def test_a_folder_the_tool_did_not_make_is_never_replaced(server, archives, tmp_path):
    (tmp_path / "ecgen-radiology").mkdir()
    (tmp_path / "ecgen-radiology/mine.xml").write_bytes(b"the user's own")
    server.files = archives
    with pytest.raises(DownloadError, match="exists and was not made by chestclip") as info:
        download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), progress=False)
    assert "\n" not in str(info.value)
    assert [p.name for p in (tmp_path / "ecgen-radiology").iterdir()] == ["mine.xml"]


def test_a_folder_extracted_before_the_marker_moved_inside_is_still_ours(tmp_path, archives):
    archive = tmp_path / REPORTS
    archive.write_bytes(archives[REPORTS])
    (tmp_path / "ecgen-radiology").mkdir()
    (tmp_path / "ecgen-radiology/stale.xml").write_bytes(b"old")
    (tmp_path / f".{REPORTS}.extracted.json").write_text(
        '{"archive": "NLMCXR_reports.tgz", "sha256": "x", "directory": "ecgen-radiology"}'
    )
    extract_archive(archive, tmp_path)
    assert not (tmp_path / "ecgen-radiology/stale.xml").exists()


def test_the_first_downloads_sha256_is_recorded_and_checked_later(server, archives, tmp_path):
    server.files = archives
    download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), progress=False)
    recorded = json.loads((tmp_path / ".chestclip-sha256.json").read_text())
    assert recorded == {REPORTS: _sha(archives[REPORTS])}
    (tmp_path / REPORTS).unlink()
    server.files = {REPORTS: archives[REPORTS][:-1] + b"!"}  # the server now serves other bytes
    with pytest.raises(DownloadError, match=r"recorded in .*when NLMCXR_reports\.tgz was first"):
        download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), progress=False)
    assert not (tmp_path / REPORTS).exists() and (tmp_path / f"{REPORTS}.corrupt").is_file()


def test_parse_sha256_and_bad_checksums(tmp_path):
    digest = "ab" * 32
    assert parse_sha256([f"{PNGS}={digest}"]) == {PNGS: digest}
    with pytest.raises(DownloadError, match="expected NAME=HEX"):
        parse_sha256([digest])
    with pytest.raises(DownloadError, match="not 64 hexadecimal digits"):
        download_iu_xray(tmp_path, "http://127.0.0.1:9", expected={PNGS: "abc"})
    with pytest.raises(DownloadError, match=r"sha256 given for 'NLMCXR_png\.tar'"):
        download_iu_xray(tmp_path, "http://127.0.0.1:9", expected={"NLMCXR_png.tar": digest})
    with pytest.raises(DownloadError, match="plain file name"):
        download_iu_xray(tmp_path, "http://127.0.0.1:9", files=("../x.tgz",))


@pytest.mark.real_data
def test_real_reports_archive(server, real_iu, tmp_path):
    """The real OpenI reports archive: one top-level ``ecgen-radiology/`` that prepare reads."""
    from chestclip.data import read_source

    data = (real_iu / "openi" / REPORTS).read_bytes()
    server.files = {REPORTS: data}
    result = download_iu_xray(tmp_path, server.base_url, files=(REPORTS,), progress=False)
    assert result.files[0].sha256 == _sha(data)
    assert result.files[0].extracted_to == tmp_path / "ecgen-radiology"
    assert len(list((tmp_path / "ecgen-radiology").glob("*.xml"))) == 3955
    records = read_source(tmp_path, with_images=False)
    assert len(records.reports) == 3955 - 95  # 95 reports were never indexed: no label
    assert [s.reason.split(":")[0] for s in records.skipped] == ["not indexed"] * 95


def test_cli_downloads_then_prepare_reads_the_result(server, archives, tmp_path):
    from click.testing import CliRunner

    from chestclip.cli import cli

    server.files = archives
    dest = tmp_path / "iu"
    args = [
        "download",
        "iu-xray",
        "--dest",
        str(dest),
        "--base-url",
        server.base_url,
        "--only",
        "reports",
        "--sha256",
        f"{REPORTS}={_sha(archives[REPORTS])}",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (dest / "ecgen-radiology/1.xml").is_file() and not (dest / PNGS).exists()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "skipped" in again.output


# ---- the view tables ------------------------------------------------------------------------

METADATA_GZ, TSNE_GZ = download.VIEW_TABLES
REPORT_WITH_IMAGES = (
    b"<?xml version='1.0'?><eCitation><uId id='CXR1'/><MeSH><major>normal</major></MeSH>"
    b"<parentImage id='CXR1_1_IM-0001-3001'><caption>PA and lateral</caption></parentImage>"
    b"<parentImage id='CXR1_1_IM-0001-4001'><caption>PA and lateral</caption></parentImage>"
    b"</eCitation>\n"
)


def _gzip(text: str) -> bytes:
    import gzip

    return gzip.compress(text.encode(), mtime=0)


@pytest.fixture
def view_tables(monkeypatch) -> dict[str, bytes]:
    """Small view tables in the real ones' columns; their digests stand in for the pinned."""
    tables = {
        METADATA_GZ: _gzip(
            "imageid,View Position\nCXR1_1_IM-0001-3001,LL\nCXR1_1_IM-0001-4001,PA\n"
        ),
        TSNE_GZ: _gzip("imageid,tsne-view\nCXR1_1_IM-0001-4001,PA\n"),
    }
    monkeypatch.setitem(download.KNOWN_SHA256, METADATA_GZ, _sha(tables[METADATA_GZ]))
    monkeypatch.setitem(download.KNOWN_SHA256, TSNE_GZ, _sha(tables[TSNE_GZ]))
    return tables


def test_view_tables_are_fetched_verified_and_read_by_prepare(server, view_tables, tmp_path):
    from chestclip.config import PrepareConfig
    from chestclip.data import prepare_dataset

    reports = _tgz({"ecgen-radiology/1.xml": REPORT_WITH_IMAGES}, dirs=("ecgen-radiology",))
    server.files = {REPORTS: reports, **view_tables}
    dest = tmp_path / "iu"
    result = download_iu_xray(
        dest,
        server.base_url,
        files=(REPORTS, *download.VIEW_TABLES),
        progress=False,
        tables_url=f"{server.base_url}/tables",
    )
    assert [f.name for f in result.files] == [REPORTS, METADATA_GZ, TSNE_GZ]
    assert [f.extracted_to for f in result.files[1:]] == [None, None]  # read gzipped
    assert [path for _, path, _ in server.requests if path.startswith("/imgs/collections/tables")]
    for name, data in view_tables.items():
        assert (dest / name).read_bytes() == data
    summary = prepare_dataset(dest, tmp_path / "prepared", PrepareConfig(images=False))
    assert summary.counts["views_by_source"]["metadata"] == {
        "Frontal": 1,  # the t-SNE table (the DICOM header's "PA" is not trusted)
        "Lateral": 1,  # the DICOM header's LL
        "unknown": 0,
    }


def test_view_table_with_other_bytes_is_refused(server, tmp_path):
    server.files = {METADATA_GZ: _gzip("imageid,View Position\nCXR9_IM-0001-1001,PA\n")}
    with pytest.raises(DownloadError, match="where 996c7d7a") as info:
        download_iu_xray(tmp_path, files=(METADATA_GZ,), progress=False, tables_url=server.base_url)
    assert "\n" not in str(info.value)
    assert (tmp_path / f"{METADATA_GZ}.corrupt").is_file() and not (tmp_path / METADATA_GZ).exists()


def test_cli_only_views(server, view_tables, tmp_path):
    from click.testing import CliRunner

    from chestclip.cli import cli

    server.files = view_tables
    args = ["download", "iu-xray", "--dest", str(tmp_path), "--only", "views"]
    result = CliRunner().invoke(cli, [*args, "--tables-url", server.base_url])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".gz") == sorted(view_tables)
    assert server.gets() == [None, None]  # nothing asked of OpenI


@pytest.mark.real_data
def test_pinned_digest_is_the_real_metadata_table(server, real_iu, tmp_path):
    server.files = {METADATA_GZ: (real_iu / "openi" / METADATA_GZ).read_bytes()}
    result = download_iu_xray(
        tmp_path, files=(METADATA_GZ,), progress=False, tables_url=server.base_url
    )
    assert result.files[0].sha256 == download.KNOWN_SHA256[METADATA_GZ]
