"""The ledger's guarantees on a real SQLite file: idempotent registration, one result per request,
dead workers' work re-queued, a crash-looping request failed, stop, status, and the OS model lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from producer.ledger.db import close_all, connect
from producer.ledger.queries import get_run, trials_ready_to_export
from producer.ledger.status import format_status, run_status
from producer.ledger.writes import (
    MAX_CRASHES,
    NewRequest,
    claim_chunk,
    claim_export,
    mark_in_flight,
    record_failure,
    record_result,
    register_run,
    reset_dead_work,
    set_stop,
)
from workers.engines.base import EngineResult, Usage
from workers.model_lock import ModelLock


@pytest.fixture()
def conn(tmp_path):
    c = connect(tmp_path / "ledger.sqlite3")
    yield c
    close_all()


def _requests(n: int, chunk_size: int = 2) -> list[NewRequest]:
    out = []
    for i in range(n):
        cond = "control" if i < n // 2 else "treatment"
        body = {"messages": [{"role": "system", "content": f"system {cond} " * 50},
                             {"role": "user", "content": f"q{i}"}], "max_tokens": 4, "temperature": 0.0}
        out.append(NewRequest("t1", i // chunk_size, i, f"nq_open|q{i}|{cond}|0.0|0|closed", "m", cond, "0.0",
                              "closed", body))
    return out


def _register(conn, n: int = 6) -> int:
    run = {"run_id": "r1", "config_path": None, "config_json": "{}", "fingerprint": "fp", "engine": "dry_run",
           "limit_items": None, "experiments_dir": "/tmp/x", "prepared_dir": "/tmp/x/prepared"}
    return register_run(conn, run, [{"trial": "t1", "model": "m", "total": n}], _requests(n))


def _result(text: str = "Paris") -> EngineResult:
    return EngineResult(text, "stop", Usage(10, 2), "req-1", 0.1, {"name": "dry_run"})


@pytest.mark.unit
def test_register_is_idempotent_and_stores_system_prompts_once(conn):
    assert _register(conn) == 6
    assert _register(conn) == 0
    assert conn.execute("select count(*) from requests").fetchone()[0] == 6
    assert conn.execute("select count(*) from texts").fetchone()[0] == 2  # control + treatment
    row = claim_chunk(conn, "r1", 0, 111)[0]
    assert row["system_text"].startswith("system control")


@pytest.mark.unit
def test_a_result_is_written_once_even_if_the_task_runs_twice(conn):
    _register(conn)
    rows = claim_chunk(conn, "r1", 0, 111)
    assert len(rows) == 2
    assert claim_chunk(conn, "r1", 0, 222) == []  # already running elsewhere
    assert record_result(conn, rows[0], _result("first"), 1, 111) is True
    assert record_result(conn, rows[0], _result("second"), 1, 222) is False
    texts = [r[0] for r in conn.execute("select text from results")]
    assert texts == ["first"]
    record_failure(conn, rows[0], "late failure", 1)  # a done request never turns failed
    assert conn.execute("select state from requests where id = ?", (rows[0]["id"],)).fetchone()[0] == "done"


def test_dead_workers_work_is_requeued_and_a_crash_loop_fails(conn):
    _register(conn)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, encoding="utf-8")
    dead_pid = int(dead.stdout)
    for _ in range(MAX_CRASHES):  # deaths before anything was sent (model loading) charge nobody
        assert len(claim_chunk(conn, "r1", 0, dead_pid)) == 2
        reset_dead_work(conn, live_pids=set())
    assert {r[0] for r in conn.execute("select crashes from requests where chunk = 0")} == {0}
    for attempt in range(1, MAX_CRASHES + 1):
        rows = claim_chunk(conn, "r1", 0, dead_pid)
        assert len(rows) == 2
        mark_in_flight(conn, rows[0]["id"], True)  # the worker dies while this request is in flight
        reset_dead_work(conn, live_pids=set())
        states = dict(conn.execute("select custom_id, state from requests where chunk = 0").fetchall())
        if attempt < MAX_CRASHES:
            assert set(states.values()) == {"queued"}
    states = conn.execute("select state, crashes, last_error from requests where chunk = 0 order by id").fetchall()
    assert states[0]["state"] == "failed" and states[0]["crashes"] == MAX_CRASHES
    assert "died 3 times" in states[0]["last_error"]
    assert states[1]["state"] == "queued" and states[1]["crashes"] == 0  # the one after it was never started


@pytest.mark.unit
def test_stop_blocks_claims_until_resumed(conn):
    _register(conn)
    conn.execute("update requests set state = 'queued'")
    set_stop(conn, "r1", True)
    assert get_run(conn, "r1")["state"] == "stopped"
    assert claim_chunk(conn, "r1", 0, 1) == []
    assert conn.execute("select count(*) from requests where state = 'pending'").fetchone()[0] == 6
    set_stop(conn, "r1", False)
    assert len(claim_chunk(conn, "r1", 0, 1)) == 2


@pytest.mark.unit
def test_export_is_claimed_once_and_only_when_complete(conn):
    _register(conn, 2)
    rows = claim_chunk(conn, "r1", 0, 5)
    assert claim_export(conn, "r1", "t1", 5) is False  # requests still running
    for r in rows:
        record_result(conn, r, _result(), 1, 5)
    assert trials_ready_to_export(conn, "r1") == [("r1", "t1")]
    assert claim_export(conn, "r1", "t1", 5) is True
    assert claim_export(conn, "r1", "t1", 6) is False


@pytest.mark.unit
def test_status_counts_and_prints_cp1252_safe(conn):
    _register(conn)
    rows = claim_chunk(conn, "r1", 0, 7)
    record_result(conn, rows[0], _result(), 1, 7)
    record_failure(conn, rows[1], "HTTP 400: prompt too long \u2014 really", 1)
    st = run_status(conn, "r1", now=time.time())
    assert st.totals.model_dump() == {"done": 1, "running": 0, "queued": 0, "pending": 4, "failed": 1, "total": 6}
    ctl = st.trials["t1"].conditions["control"]
    assert ctl.done == 1 and ctl.failed == 1 and ctl.pending == 1
    assert st.requests_per_min > 0 and st.recent_errors[0].custom_id == rows[1]["custom_id"]
    text = format_status(st)
    assert "failed 1" in text and "prompt too long" in text


def test_model_lock_is_exclusive_and_released_when_the_holder_dies(tmp_path):
    path = tmp_path / "model.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(__import__('pathlib').Path(__file__).resolve().parents[1])!r})
            from workers.model_lock import ModelLock
            lock = ModelLock(__import__('pathlib').Path({str(path)!r}))
            assert lock.try_acquire()
            print('held', flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True, encoding="utf-8",
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        mine = ModelLock(path)
        assert mine.try_acquire() is False
        holder.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: the OS drops the lock
        holder.wait(10)
        assert mine.try_acquire() is True
        mine.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


@pytest.mark.unit
@pytest.mark.parametrize(("engine", "local"), [("openai_compat", True), ("llama_cpp", True), ("openai", False),
                                                ("openai_dry_run", False), ("fireworks", False)])
def test_only_batch_runs_are_left_to_their_provider(conn, engine, local):
    """Local workers take every run but a batch provider's (its parts are the provider's jobs); the local
    engine openai_compat is local although its name starts like the openai batch backend."""
    from producer.ledger.queries import open_chunks
    from producer.ledger.writes import next_queued_chunk

    run = {"run_id": "r1", "config_path": None, "config_json": "{}", "fingerprint": "fp", "engine": engine,
           "limit_items": None, "experiments_dir": "/tmp/x", "prepared_dir": "/tmp/x/prepared"}
    register_run(conn, run, [{"trial": "t1", "model": "m", "total": 2}], _requests(2))
    assert bool(open_chunks(conn, "r1")) is local
    conn.execute("update requests set state = 'queued'")
    assert (next_queued_chunk(conn) is not None) is local
