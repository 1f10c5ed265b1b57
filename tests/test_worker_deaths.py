"""A worker's death is charged only to the request it had in flight (issue 13 item 4), with real worker
processes: kill -9 while the engine is still starting (nothing sent) never fails a request, however
often; a request that really kills its worker (a crash in the engine, injected by
workers/engines/faults.py) still ends the crash loop after MAX_CRASHES deaths, and nothing else fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from producer.ledger.writes import MAX_CRASHES
from tests.support.queue_runs import (
    count_state,
    expected_ids,
    ledger,
    popen,
    producer,
    read_predictions,
    results_dir,
    run_id_of,
    run_state,
    stop_process,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="kill -9 of a chosen worker")


def _claimer(queue, run_id, skip: set[int]) -> int | None:
    """A live worker pid that has claimed requests and is not one killed before."""
    with ledger(queue) as conn:
        pids = {r[0] for r in conn.execute("select distinct worker from requests where run_id = ? and"
                                           " state = 'running'", (run_id,))}
    for pid in pids - skip:
        if pid and psutil.pid_exists(pid):
            return pid
    return None


def _enqueue(tmp_path, **overrides):
    cfg = write_config(tmp_path, local_engine="dry_run", **overrides)
    queue = tmp_path / "queue"
    assert producer(["enqueue", "--config", str(cfg)], queue).returncode == 0
    return queue, run_id_of(queue)


def _finish(queue, run_id) -> None:
    pool = popen(["-m", "workers", "-w", "1"], queue)
    try:
        wait_for(lambda: run_state(queue, run_id) == "done", 120, "the run to finish")
    finally:
        stop_process(pool)


def test_kills_before_anything_was_sent_charge_no_request(tmp_path):
    queue, run_id = _enqueue(tmp_path)
    pool = popen(["-m", "workers", "-w", "1"], queue, EXCELLENCE_FAULTS="load_delay_s=60")  # a slow model load
    killed: set[int] = set()
    try:
        for _ in range(MAX_CRASHES + 1):  # one more than it takes to fail a request that was in flight
            wait_for(lambda: _claimer(queue, run_id, killed) is not None, 120, "a worker to claim the chunk")
            pid = _claimer(queue, run_id, killed)
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        wait_for(lambda: _claimer(queue, run_id, killed) is not None, 120, "the chunk claimed again")
    finally:
        pool.kill()  # its last child, still "loading", sees the pool gone and gives the chunk back
        pool.wait(10)
    try:
        wait_for(lambda: count_state(queue, run_id, "running") == 0, 60, "the claimed work given back")
    finally:
        try:
            out, _ = pool.communicate(timeout=15)  # EOF once every child has exited
        except subprocess.TimeoutExpired:
            out = "(a child still holds the output pipe)"
    assert "Traceback" not in (out or ""), out
    with ledger(queue) as conn:
        assert conn.execute("select max(crashes) from requests where run_id = ?", (run_id,)).fetchone()[0] == 0
    assert count_state(queue, run_id, "failed") == 0
    _finish(queue, run_id)
    ids = expected_ids(queue, run_id)
    assert count_state(queue, run_id, "done") == len(ids)
    _, rows = read_predictions(results_dir(tmp_path, run_id) / "predictions.csv")
    assert sorted(r["custom_id"] for r in rows) == ids


def test_reconcile_after_deaths_with_nothing_in_flight_fails_nothing(tmp_path):
    """The ledger half of the rule: a dead worker's claimed chunk goes back without a charge when it sent
    nothing (here the worker is a process that exited right after claiming)."""
    from producer.ledger.db import close_all, connect
    from producer.ledger.writes import claim_chunk, reset_dead_work

    queue, run_id = _enqueue(tmp_path)
    conn = connect(queue / "ledger.sqlite3")
    try:
        for _ in range(MAX_CRASHES + 1):
            dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                  text=True, encoding="utf-8")
            assert claim_chunk(conn, run_id, 0, int(dead.stdout))
            assert reset_dead_work(conn, live_pids=set()) > 0
        states = conn.execute("select state, crashes from requests where run_id = ? and chunk = 0",
                              (run_id,)).fetchall()
    finally:
        close_all()
    assert {r["state"] for r in states} == {"queued"} and {r["crashes"] for r in states} == {0}


def _engine_shares(queue, run_id) -> dict[str, float]:
    """Each request's share as workers/engines/faults.py draws it (a hash of the messages it sends)."""
    import hashlib

    from workers.inference import _messages

    out = {}
    with ledger(queue) as conn:
        rows = conn.execute("select r.custom_id, r.body, t.text as system_text from requests r left join texts t"
                            " on t.sha = r.system_sha where r.run_id = ?", (run_id,)).fetchall()
    for row in rows:
        messages, _ = _messages(row)
        key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode("utf-8")).hexdigest()
        out[row["custom_id"]] = int(key[:8], 16) / 0xFFFFFFFF
    return out


def test_a_request_that_kills_its_worker_fails_after_max_crashes_and_only_it(tmp_path):
    queue, run_id = _enqueue(tmp_path)
    shares = _engine_shares(queue, run_id)
    culprit = max(shares, key=shares.get)
    crash = 1.0 - shares[culprit] + 1e-9  # only the request with the highest share crashes the engine
    assert sorted(shares.values())[-2] < shares[culprit] - 1e-9
    pool = popen(["-m", "workers", "-w", "1"], queue, EXCELLENCE_FAULTS=f"crash={crash!r}")
    try:
        wait_for(lambda: run_state(queue, run_id) == "done", 180, "the run to end despite the crash loop")
    finally:
        out = stop_process(pool)
    assert out.count("restarting") == MAX_CRASHES, out
    with ledger(queue) as conn:
        failed = conn.execute("select custom_id, last_error from requests where run_id = ? and state = 'failed'",
                              (run_id,)).fetchall()
    assert [r["custom_id"] for r in failed] == [culprit]
    assert f"died {MAX_CRASHES} times" in failed[0]["last_error"]
    assert count_state(queue, run_id, "done") == len(shares) - 1
