"""An engine that is down: `run` refuses to start (preflight), and a run whose engine dies mid-way
stops by itself with one clear reason instead of failing every remaining request. Real processes,
real SQLite, a real closed port on 127.0.0.1."""

from __future__ import annotations

import json
import socket

from tests.support.queue_runs import count_state, producer, run_id_of, write_config


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cfg(tmp_path):
    return write_config(tmp_path, local_engine="openai_compat", local_model="smollm2",
                        local_endpoint=f"http://127.0.0.1:{_closed_port()}/v1",
                        sizes={"squad_v2": 6, "triviaqa": 4, "nq_open": 4}, max_retries=1,
                        outage_wait_s=2)  # nothing listens, and nothing will: stop after a short wait


def test_run_refuses_to_start_when_the_engine_is_unreachable(tmp_path):
    queue = tmp_path / "queue"
    out = producer(["run", "--config", str(_cfg(tmp_path)), "--workers", "1"], queue)
    assert out.returncode == 1, out.stdout + out.stderr
    line = out.stderr.strip()
    assert line.startswith("error: preflight failed: engine: cannot reach") and "--no-preflight" in line and "\n" not in line
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "experiments").exists()  # nothing registered


def test_engine_down_mid_run_stops_the_run_with_its_reason(tmp_path):
    queue = tmp_path / "queue"
    out = producer(["run", "--config", str(_cfg(tmp_path)), "--workers", "1", "--no-preflight"], queue)
    assert out.returncode == 1, out.stdout + out.stderr
    run_id = run_id_of(queue)
    assert f"run {run_id} stopped: engine down:" in out.stdout
    assert f"python -m producer run --resume {run_id}" in out.stdout
    failed, pending = count_state(queue, run_id, "failed"), count_state(queue, run_id, "pending")
    assert failed == 0 and pending == 28  # stopped early; the outage's failures wait for the resume too
    st = json.loads(producer(["status", "--json"], queue).stdout)
    assert st["state"] == "stopped" and st["stop_reason"].startswith("engine down: ")
    assert "127.0.0.1" in st["stop_reason"]  # the last error says which server did not answer
    text = producer(["status"], queue).stdout
    assert "stopped: engine down" in text and f"--resume {run_id}" in text


def test_resume_of_an_unknown_run_is_one_line_and_leaves_no_worker(tmp_path):
    import psutil

    queue = tmp_path / "queue"
    out = producer(["run", "--config", str(_cfg(tmp_path)), "--resume", "no-such-run"], queue, timeout=60)
    assert out.returncode == 2 and out.stderr.strip() == "error: unknown run id 'no-such-run' (see: python -m producer status)"
    leftovers = [p for p in psutil.process_iter(["cmdline", "environ"])
                 if "spawn_main" in " ".join(p.info["cmdline"] or [])
                 and (p.info["environ"] or {}).get("EXCELLENCE_QUEUE_DIR") == str(queue)]
    assert leftovers == []  # the pool started before the run id was checked has been stopped
