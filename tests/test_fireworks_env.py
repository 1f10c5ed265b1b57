""".env parsing (python-dotenv) and FIREWORKS_API_BASE: the key goes only over https, or to a loopback host.

Real parts: a real .env file, the fake Fireworks server on 127.0.0.1, a raw TCP listener on a
non-loopback address that records every byte a client would send it, and the real CLI.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from producer.host.env import parse_env_text
from tests.support.fireworks_runs import fw_config, fw_env, run_producer
from tests.support.servers.fake_fireworks import FakeFireworksServer, FakeState
from workers.fireworks.client import (
    DEFAULT_API_BASE,
    BatchConfigError,
    Credentials,
    FireworksClient,
    _Secret,
)

KEY = "fw-dotenv-SECRET-0123456789"


@pytest.fixture
def no_fireworks_env(monkeypatch, tmp_path):
    for name in ("FIREWORKS_API_KEY", "FIREWORKS_ACCOUNT_ID", "FIREWORKS_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.unit
def test_quoted_values_with_inline_comments_are_unquoted(no_fireworks_env):
    text = ('# my Fireworks settings\n'
            'FIREWORKS_API_KEY="fw-quoted" # the key from the console\n'
            "FIREWORKS_ACCOUNT_ID='my-account'   # single quotes\n"
            'export PLAIN=value # comment\n'
            'HASH_INSIDE="a#b" \n'
            'LITERAL=abc${HOME}def\n'
            'EMPTY=\n'
            'NO_VALUE\n')
    assert parse_env_text(text) == {"FIREWORKS_API_KEY": "fw-quoted", "FIREWORKS_ACCOUNT_ID": "my-account",
                                    "PLAIN": "value", "HASH_INSIDE": "a#b", "LITERAL": "abc${HOME}def",
                                    "EMPTY": ""}
    (no_fireworks_env / ".env").write_text(text, encoding="utf-8-sig")  # Notepad's BOM too
    creds = Credentials.from_env()
    assert creds.api_key.reveal() == "fw-quoted" and creds.account == "my-account"
    assert creds.api_base == DEFAULT_API_BASE


def test_the_key_from_a_quoted_env_line_is_accepted_by_the_server(no_fireworks_env):
    """End to end: the exact key (no quotes, no comment) reaches the server, which accepts it."""
    srv = FakeFireworksServer(FakeState(api_key=KEY)).start()
    try:
        (no_fireworks_env / ".env").write_text(
            f'FIREWORKS_API_KEY="{KEY}" # comment\nFIREWORKS_ACCOUNT_ID="acct"\n'
            f'FIREWORKS_API_BASE="{srv.base_url}/" # the test server\n', encoding="utf-8")
        client = FireworksClient(Credentials.from_env(), deadline_s=2, backoff_s=0.01)
        assert client.get_dataset("nothing-here") is None  # 404, not 403: the key was right
    finally:
        srv.stop()


@pytest.mark.unit
@pytest.mark.parametrize("base", ["https://api.fireworks.ai", "https://proxy.example.com:8443/",
                                  "http://127.0.0.1:8765", "http://127.10.0.3", "http://localhost:9",
                                  "http://[::1]:8080", "HTTPS://API.FIREWORKS.AI"])
def test_https_and_loopback_bases_are_accepted(base):
    from workers.fireworks.client import check_api_base

    assert check_api_base(base) == base.rstrip("/")
    assert Credentials(_Secret("k"), "a", base).api_base == base.rstrip("/")


@pytest.mark.unit
@pytest.mark.parametrize("base, words", [
    ("http://api.fireworks.ai", "https://"), ("http://10.0.0.5:8080", "https://"),
    ("http://127.0.0.1.nip.io", "https://"), ("http://localhost.evil.com", "https://"),
    ("ftp://api.fireworks.ai", "https://"), ("api.fireworks.ai", "https://"),
    ("https://user:pw@api.fireworks.ai", "user name or password"), ("https://host:99999", "not a valid URL"),
])
def test_cleartext_or_odd_bases_are_refused_in_one_line(base, words):
    with pytest.raises(BatchConfigError) as exc:
        Credentials(_Secret(KEY), "a", base)
    assert words in str(exc.value) and "\n" not in str(exc.value)
    assert KEY not in str(exc.value) and "pw" not in str(exc.value)


def _non_loopback_ipv4() -> str:
    """This machine's outward address (no packet is sent); 0.0.0.0 (also this machine on Linux) without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            addr = s.getsockname()[0]
        except OSError:
            return "0.0.0.0"
    return addr if not addr.startswith("127.") else "0.0.0.0"


class Listener:
    """A plain TCP listener on every interface: records what arrives, answers 403 to any request."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_http_base_from_env_file_is_refused_before_the_key_is_sent(tmp_path):
    """A stray .env pointing at http:// on another host: `run` refuses at once, the listener sees nothing."""
    listener = Listener()
    try:
        base = f"http://{_non_loopback_ipv4()}:{listener.port}"
        with socket.create_connection((base[7:].rsplit(":", 1)[0], listener.port), timeout=5):
            pass  # the listener is reachable at that address: a client would really have sent the key there
        for _ in range(100):
            if listener.connections:
                break
            time.sleep(0.05)
        connections_before = listener.connections
        assert connections_before == 1
        (tmp_path / ".env").write_text(f'FIREWORKS_API_KEY="{KEY}"\nFIREWORKS_ACCOUNT_ID=acct\n'
                                       f"FIREWORKS_API_BASE={base}\n", encoding="utf-8")
        env = fw_env(tmp_path, None)
        proc = run_producer(tmp_path, env, "run", "--config", str(fw_config(tmp_path)), "-w", "1", "--no-preflight",
                         timeout=120)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2, out
        assert "FIREWORKS_API_BASE (from .env)" in proc.stderr and "https://" in proc.stderr, out
        assert "Traceback" not in out and KEY not in out
        assert listener.connections == connections_before and listener.received == b""
    finally:
        listener.close()


def test_doctor_and_plan_show_a_base_that_is_not_the_default(tmp_path):
    cfg = str(fw_config(tmp_path))
    env = fw_env(tmp_path, None)
    plain = run_producer(tmp_path, env, "plan", "--config", cfg)
    assert plain.returncode == 0, plain.stderr
    assert "API base" not in plain.stdout  # the default is not worth a line

    env["FIREWORKS_API_BASE"] = "http://127.0.0.1:8765/"
    plan = run_producer(tmp_path, env, "plan", "--config", cfg)
    assert plan.returncode == 0, plan.stderr
    assert "Fireworks API base: http://127.0.0.1:8765 (from environment" in plan.stdout

    del env["FIREWORKS_API_BASE"]
    (tmp_path / ".env").write_text("FIREWORKS_API_BASE=http://192.0.2.10:8080\n", encoding="utf-8")
    doctor = run_producer(tmp_path, env, "doctor", "--config", cfg)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    line = next(ln for ln in doctor.stdout.splitlines() if "fireworks api base" in ln)
    assert line.startswith("[FAIL]") and "(from .env) is http://192.0.2.10:8080" in line and "https://" in line
    plan = run_producer(tmp_path, env, "plan", "--config", cfg)
    assert "REFUSED" in plan.stdout and "http://192.0.2.10:8080" in plan.stdout
