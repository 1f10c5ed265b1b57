"""An engine outage never leaves failed requests behind (issue 13 item 3), with real processes, real SQLite
and a real server on 127.0.0.1 (tests/support/servers/faulty_openai.py):

- the engine goes away mid-run: the run stops with its reason, the requests that failed while the
  stop was being detected go back to pending, and the printed resume command finishes every one;
- the server hangs (accepts requests, never answers): the stop trips after one or two timed-out
  attempts, not after 16 requests x every retry (ten hours with the default 600 s timeout).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.support.cli import cli_env
from tests.support.paths import ROOT
from tests.support.queue_runs import (
    count_state,
    expected_ids,
    ledger,
    popen,
    producer,
    run_id_of,
    write_config,
)
from tests.support.servers.faulty_openai import FaultPlan, FaultState, FaultyOpenAIServer
from tests.support.servers.llama_server import free_port
from workers.engines.health import answers_at_all

SIZES = {"squad_v2": 6, "triviaqa": 4, "nq_open": 4}  # 28 requests


def _cfg(tmp_path, url: str, **overrides):
    return write_config(tmp_path, local_engine="openai_compat", local_model="smollm2", local_endpoint=f"{url}/v1",
                        sizes=SIZES, **overrides)


def test_failures_of_an_outage_go_back_to_pending_and_resume_finishes_them(tmp_path):
    port = free_port()
    queue = tmp_path / "queue"
    cfg = _cfg(tmp_path, f"http://127.0.0.1:{port}", max_retries=1, retry_backoff_s=0.01, outage_wait_s=2)
    out = producer(["run", "--config", str(cfg), "--workers", "1", "--no-preflight"], queue)
    assert out.returncode == 1, out.stdout + out.stderr
    run_id = run_id_of(queue)
    assert f"run {run_id} stopped: engine down:" in out.stdout
    assert "did not come back within 2 s" in out.stdout
    assert count_state(queue, run_id, "failed") == 0  # 16-20 stayed failed before
    assert count_state(queue, run_id, "pending") == 28
    with ledger(queue) as conn:
        assert conn.execute("select count(*) from requests where run_id = ? and last_error is not null",
                            (run_id,)).fetchone()[0] == 0
    st = json.loads(producer(["status", "--json"], queue).stdout)
    assert st["state"] == "stopped" and st["stop_reason"].startswith("engine down: ")

    with FaultyOpenAIServer(FaultState(), port=port) as server:  # the engine is back
        again = producer(["run", "--resume", run_id, "--workers", "1"], queue)
        assert again.returncode == 0, again.stdout + again.stderr
        assert sum(server.state.answered.values()) == 28
    assert "done: 28 results, 0 failed" in again.stdout
    with ledger(queue) as conn:
        keys = sorted(r[0] for r in conn.execute("select custom_id from results where run_id = ?", (run_id,)))
    assert keys == expected_ids(queue, run_id)


def _answered(queue) -> int:
    """Requests done so far (0 before the run is registered)."""
    try:
        return count_state(queue, run_id_of(queue), "done")
    except (TypeError, sqlite3.Error):  # no ledger or no run yet
        return 0


def _server_process(port: int) -> subprocess.Popen:
    """The server as its own process: killing it closes its listening socket and every open connection,
    as an engine that crashes or restarts does (a thread server would keep serving kept-alive ones)."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.servers.faulty_openai", "--port", str(port),
                             "--latency-s", "0.3"], cwd=ROOT, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not answers_at_all(f"http://127.0.0.1:{port}", timeout_s=0.5):
        assert time.monotonic() < deadline and proc.poll() is None, "the server never started"
        time.sleep(0.1)
    return proc


def test_a_short_outage_waits_for_the_engine_and_fails_nothing(tmp_path):
    """The engine dies mid-run (3 answers in) and is back 3 s later: the run waits (outage_wait_s) and finishes
    with every request answered, no stop and no failure; before, the requests sent meanwhile spent their
    attempts on refused connections and failed for good (exit 3; only --retry-failed recovered them)."""
    port = free_port()
    queue = tmp_path / "queue"
    cfg = _cfg(tmp_path, f"http://127.0.0.1:{port}", max_retries=1, retry_backoff_s=0.01, outage_wait_s=60)
    server = _server_process(port)
    run = popen(["-m", "producer", "run", "--config", str(cfg), "--workers", "1", "--no-preflight"], queue)
    try:
        deadline = time.monotonic() + 60
        while _answered(queue) < 3:
            assert time.monotonic() < deadline and run.poll() is None, "the run ended or stalled before the outage"
            time.sleep(0.1)
        assert run.poll() is None, "the run ended before the outage"
        server.kill()  # the engine goes away mid-run
        server.wait(10)
        time.sleep(3)
        server = _server_process(port)  # and is back
        out, _ = run.communicate(timeout=180)
    finally:
        for proc in (run, server):
            if proc.poll() is None:
                proc.kill()
    assert run.returncode == 0, out
    run_id = run_id_of(queue)
    assert count_state(queue, run_id, "failed") == 0 and count_state(queue, run_id, "done") == 28
    assert "waiting up to 60 s for it to come back" in out  # said once by the worker, on stderr
    assert "stopped" not in out


@pytest.mark.parametrize(("mode", "sends", "why"), [
    ("hang", 2, "2 attempts in a row got no answer"),  # GET still answers (Ollama with a stuck runner)
    ("frozen", 1, "the server does not answer at all"),  # nothing answers (a stopped process)
])
def test_a_hung_server_trips_the_engine_down_stop_after_one_or_two_timeouts(tmp_path, mode, sends, why):
    queue = tmp_path / "queue"
    with FaultyOpenAIServer(FaultState(plan=FaultPlan(mode=mode))) as server:
        cfg = _cfg(tmp_path, server.url, request_timeout_s=1.0, max_retries=3, retry_backoff_s=0.01)
        out = producer(["run", "--config", str(cfg), "--workers", "1", "--no-preflight"], queue)
        sent = sum(server.state.sent.values())
    assert out.returncode == 1, out.stdout + out.stderr
    run_id = run_id_of(queue)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith(f"run {run_id} stopped: "))
    assert "engine down:" in line and "no answer within 1 s" in line and why in line
    assert "raise request_timeout_s" in line
    assert sent == sends  # before: 16 requests x 4 attempts, each waiting the whole timeout
    assert count_state(queue, run_id, "failed") == 0 and count_state(queue, run_id, "pending") == 28


@pytest.mark.unit
def test_the_window_remembers_which_failures_an_outage_may_explain_and_counts_timeout_rounds():
    from workers.engines.health import FailureWindow

    window = FailureWindow(size=4, threshold=0.75)
    window.failure("gave up after 2 attempts: connection dropped", 11)
    window.failure("HTTP 400: prompt too long")  # the request's own fault: never given back
    window.failure("gave up after 2 attempts: cannot reach", 13)
    assert window.failed_ids() == [11, 13]
    assert [window.timeout("no answer within 600 s", concurrent=2) for _ in range(3)] == [False, False, True]
    window.success()  # an answer in between: the server is alive
    assert window.timeout("no answer within 600 s") is False and window.timeout("no answer") is True
    window.reset()
    assert window.failed_ids() == [] and window.timeout("no answer") is False
