"""Downloads against a real HTTP server on 127.0.0.1: once, resumable with Range, checksum recorded,
and one clear line when the server cannot be reached."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from producer.inputs.datasets.data_errors import DataError
from producer.inputs.datasets.hub import ensure_downloaded
from tests.support.cli import run_cli
from tests.support.paths import FIXTURES
from tests.support.workdirs import make_workdir

PAYLOAD = (FIXTURES / "NQ-open.dev.mini.jsonl").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD with HTTP Range support; ``cut_after`` drops the connection mid-body once."""

    server_version = "fixture/1"

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[len("bytes="):].split("-")[0])
        payload = srv.payload
        body = payload[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_after is not None:
            self.wfile.write(body[: srv.cut_after])
            self.wfile.flush()
            srv.cut_after = None
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []
    srv.cut_after = None
    srv.payload = PAYLOAD
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _url(srv) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/nq_open/NQ-open.dev.jsonl"


def test_download_once_and_record_checksum(server, tmp_path: Path) -> None:
    dest = tmp_path / "raw" / "nq_open" / "NQ-open.dev.jsonl"
    ensure_downloaded(_url(server), dest, "nq_open")
    assert dest.read_bytes() == PAYLOAD
    record = json.loads((dest.parent / "downloads.json").read_text(encoding="utf-8"))[dest.name]
    assert record["sha256"] == hashlib.sha256(PAYLOAD).hexdigest() and record["bytes"] == len(PAYLOAD)
    ensure_downloaded(_url(server), dest, "nq_open")
    assert len(server.requests) == 1  # second call reuses the file


def test_interrupted_download_resumes_with_range(server, tmp_path: Path) -> None:
    big = PAYLOAD * (400_000 // len(PAYLOAD))  # several download chunks
    server.payload = big
    dest = tmp_path / "raw" / "NQ-open.dev.jsonl"
    server.cut_after = 250_000
    with pytest.raises(DataError) as err:
        ensure_downloaded(_url(server), dest, "nq_open")
    assert "\n" not in str(err.value) and "resume" in str(err.value)
    part = dest.with_name(dest.name + ".part")
    kept = part.read_bytes()
    assert 0 < len(kept) <= 250_000 and big.startswith(kept) and not dest.exists()
    ensure_downloaded(_url(server), dest, "nq_open")
    assert server.requests[-1]["range"] == f"bytes={len(kept)}-"
    assert dest.read_bytes() == big and not part.exists()


def test_url_source_through_prepare_cli(server, tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    proc = run_cli(["prepare", "--config", "demo", "--data", f"nq_open={_url(server)}", "--limit-items", "2"], cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert (work / "data/raw/nq_open/NQ-open.dev.jsonl").read_bytes() == PAYLOAD
    manifest = json.loads((work / "data/prepared/prepared_manifest.json").read_text(encoding="utf-8"))
    assert manifest["sources"]["nq_open"]["kind"] == "url"
    assert manifest["sources"]["nq_open"]["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()


def test_unreachable_server_gives_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = make_workdir(tmp_path)
    url = f"http://127.0.0.1:{port}/NQ-open.dev.jsonl"
    proc = run_cli(["prepare", "--config", "demo", "--data", f"nq_open={url}"], cwd=work)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert "nq_open: download cannot connect" in lines[0] and "offline?" in lines[0]
    assert "--data nq_open=PATH" in lines[0]
