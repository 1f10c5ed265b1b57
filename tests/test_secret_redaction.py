"""Every key the tool knows is redacted in one place (issue 30, item 3).

Why: an OpenAI-compatible server that answers 401 with "invalid credentials: Bearer <key>" put
``OPENAI_COMPAT_API_KEY`` into errors.jsonl, report.html, report.md, the ledger's ``last_error``, the
run's stderr and doctor's text output. The server here is real (127.0.0.1) and echoes the key.
"""

from __future__ import annotations

import pytest

from config.engines import secret_env_names
from config.secrets import redact_secrets
from tests.support.queue_runs import producer, write_config
from tests.support.servers.faulty_openai import FaultState, FaultyOpenAIServer

CANARY = "sk-CANARY-compat-77a1b2c3d4e5f6"


@pytest.mark.unit
def test_every_engine_and_provider_key_is_known_and_redacted(monkeypatch):
    names = secret_env_names()
    assert {"OPENAI_COMPAT_API_KEY", "FIREWORKS_API_KEY", "OPENAI_API_KEY"} <= set(names)
    for i, name in enumerate(names):
        monkeypatch.setenv(name, f"secret-{i}-value-xyz")
    text = " ".join(f"Bearer secret-{i}-value-xyz" for i in range(len(names)))
    out = redact_secrets(text)
    assert "secret-" not in out and out.count("<redacted>") == len(names)
    assert redact_secrets("nothing to hide") == "nothing to hide"


def test_a_key_echoed_by_the_server_is_written_nowhere(tmp_path):
    queue = tmp_path / "queue"
    with FaultyOpenAIServer(FaultState(api_key="the-right-key")) as server:
        cfg = write_config(tmp_path, local_engine="openai_compat", local_model="smollm2",
                           local_endpoint=f"{server.url}/v1", sizes={"squad_v2": 2, "triviaqa": 1, "nq_open": 1})
        out = producer(["run", "--config", str(cfg), "--workers", "1", "--no-preflight"], queue,
                       OPENAI_COMPAT_API_KEY=CANARY)
        doctor = producer(["doctor", "--config", str(cfg)], queue, OPENAI_COMPAT_API_KEY=CANARY)
        status = producer(["status"], queue, OPENAI_COMPAT_API_KEY=CANARY)
    assert out.returncode != 0 and "invalid credentials: Bearer <redacted>" in out.stdout + out.stderr
    for text in (out.stdout, out.stderr, doctor.stdout, doctor.stderr, status.stdout, status.stderr):
        assert CANARY not in text
    written = [p for p in (*tmp_path.rglob("*"),) if p.is_file()]
    assert any(p.name == "errors.jsonl" for p in written)
    for path in written:
        assert CANARY.encode() not in path.read_bytes(), path
