"""``doctor --json`` and ``--report FILE``: the bug report validates against docs/doctor-report.schema.json,
holds the facts a maintainer needs and no secret (canary keys in the environment, in .env and in a URL).
Real CLI in a subprocess, a real HTTP server (tests/support/servers/fake_ollama.py) for the Ollama version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.support.offline_config import write_offline_config
from tests.support.paths import ROOT
from tests.support.servers.fake_ollama import VERSION, FakeModel, FakeOllama, FakeOllamaServer

SCHEMA = json.loads((ROOT / "docs" / "doctor-report.schema.json").read_text(encoding="utf-8"))
MODEL = "llama3.1:8b-instruct-q4_K_M"
CANARY_ENV = "fw_canary_env_4f1d2c9b7a"
CANARY_DOTENV = "fw_canary_dotenv_8e3b5a1c60"
CANARY_URL = "urlpass_canary_77c1e0"


def doctor(tmp_path: Path, *args: str, env_extra: dict[str, str] | None = None, **overrides) -> subprocess.CompletedProcess:
    config = write_offline_config(tmp_path, **overrides)
    env = {**os.environ, "EXCELLENCE_QUEUE_DIR": str(tmp_path / "queue"), "PYTHONIOENCODING": "cp1252",
           "PYTHONPATH": str(ROOT), "FIREWORKS_API_KEY": CANARY_ENV, "OLLAMA_NUM_PARALLEL": "2",
           "HTTPS_PROXY": f"http://proxyuser:{CANARY_URL}@127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
           **(env_extra or {})}
    (tmp_path / ".env").write_text(f"FIREWORKS_API_KEY={CANARY_DOTENV}\nMY_SERVICE_TOKEN={CANARY_DOTENV}x\n",
                                   encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "producer", "doctor", "--config", str(config), *args], cwd=tmp_path,
                          capture_output=True, text=True, encoding="cp1252", errors="replace", env=env, timeout=120)


def assert_no_secret(text: str) -> None:
    for canary in (CANARY_ENV, CANARY_DOTENV, CANARY_URL):
        assert canary not in text


def test_json_report_validates_and_names_the_facts(tmp_path: Path) -> None:
    with FakeOllamaServer(FakeOllama(models=[FakeModel(MODEL, context_length=131072)])) as srv:
        host = srv.url.split("://", 1)[1]
        endpoint = f"http://user:{CANARY_URL}@{host}"
        proc = doctor(tmp_path, "--json", local_engine="ollama", local_endpoint=endpoint, local_model=MODEL, n_ctx=8192)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_no_secret(proc.stdout + proc.stderr)
    report = json.loads(proc.stdout)  # stdout is the JSON document and nothing else
    jsonschema.validate(report, SCHEMA)
    assert report["ready"] is True
    assert report["ollama"]["version"] == VERSION and report["ollama"]["num_parallel_env"] == "2"
    assert report["config"]["local_endpoint"] == srv.url
    assert report["environment"]["HTTPS_PROXY"] == "http://127.0.0.1:9"
    assert report["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert report["packages"]["pyarrow"] and report["packages"]["excellence-experiment"]
    assert report["queue"]["path"] == str((tmp_path / "queue").resolve())
    assert report["queue"]["network"] is False and report["queue"]["free_mib"] > 0
    assert "FIREWORKS_API_KEY" in report["secret_variables_set"]  # the name, never the value
    names = [c["name"] for c in report["checks"]]
    assert {"versions", "data", "engine", "model", "context", "disk", "queue"} <= set(names)
    llama = report["llama_cpp"]
    assert llama["importable"] is True and isinstance(llama["gpu_offload"], bool) and "CPU" in llama["system_info"]


def test_report_file_beside_the_screen_and_failures_recorded(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "doctor.json"
    out.parent.mkdir()
    proc = doctor(tmp_path, "--report", str(out), local_engine="ollama", local_endpoint="http://127.0.0.1:9",
                  local_model=MODEL)
    assert proc.returncode == 1
    assert proc.stdout.rstrip().splitlines()[-1] == f"report written to {out} (no secrets in it: attach it to a bug report)"
    assert "[FAIL] engine: cannot reach Ollama" in proc.stdout
    text = out.read_text(encoding="utf-8")
    assert_no_secret(text)
    report = json.loads(text)
    jsonschema.validate(report, SCHEMA)
    assert report["ready"] is False
    assert {"name": "engine", "status": "fail",
            "detail": "cannot reach Ollama at http://127.0.0.1:9: start it with `ollama serve`"} in report["checks"]
    assert report["ollama"]["version"] is None and report["ollama"]["error"]


def test_queue_inside_onedrive_is_flagged(tmp_path: Path) -> None:
    """Linux analogue of a queue under %OneDrive%: the folder check reads the same variable Windows sets."""
    onedrive = tmp_path / "OneDrive - Contoso"
    queue = onedrive / "excellence" / "queue"
    proc = doctor(tmp_path, "--json", env_extra={"OneDriveCommercial": str(onedrive), "EXCELLENCE_QUEUE_DIR": str(queue)})
    report = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["queue"]["onedrive"] is True
    queue_check = next(c for c in report["checks"] if c["name"] == "queue")
    assert queue_check["status"] == "warn" and "inside OneDrive" in queue_check["detail"]
    assert "EXCELLENCE_QUEUE_DIR" in queue_check["detail"]


@pytest.mark.unit
def test_schema_rejects_a_report_with_a_secret_value_field() -> None:
    """The schema is closed: a report that grew an unlisted field (say, the whole environment) fails."""
    from producer.checks.doctor_report import safe_url

    assert safe_url(f"https://u:{CANARY_URL}@api.example.com:8443/v1?key={CANARY_URL}") == "https://api.example.com:8443/v1"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 1, "env_dump": {"FIREWORKS_API_KEY": CANARY_ENV}}, SCHEMA)
