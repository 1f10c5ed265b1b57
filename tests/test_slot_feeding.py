"""Keeping the batched engine's slots fed across chunk boundaries (issue 28): the ledger hands the
inference worker the run's next queued chunk, in chunk order and atomically, and the feeder refills a
freed thread from it before the current chunk has drained."""

from __future__ import annotations

import threading

import pytest

from producer.ledger.db import close_all, connect
from producer.ledger.writes import NewRequest, claim_chunk, claim_next_chunk, register_run, set_stop

pytestmark = pytest.mark.unit


@pytest.fixture()
def conn(tmp_path):
    c = connect(tmp_path / "ledger.sqlite3")
    yield c
    close_all()


def _register(conn, models: list[str]) -> None:
    """One request per chunk, chunk i of model ``models[i]``; every request queued (its message sent)."""
    run = {"run_id": "r1", "config_path": None, "config_json": "{}", "fingerprint": "fp", "engine": "llama_cpp",
           "limit_items": None, "experiments_dir": "/tmp/x", "prepared_dir": "/tmp/x/prepared"}
    reqs = [NewRequest("t1", i, i, f"nq_open|q{i}|control|0.0|0|closed", m, "control", "0.0", "closed",
                       {"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 4, "temperature": 0.0})
            for i, m in enumerate(models)]
    register_run(conn, run, [{"trial": "t1", "model": "m", "total": len(models)}], reqs)
    conn.execute("update requests set state = 'queued'")


def test_the_next_queued_chunk_is_claimed_in_chunk_order_once(conn):
    _register(conn, ["m"] * 5)
    assert len(claim_chunk(conn, "r1", 0, 111)) == 1  # the chunk of the message being run
    claim_chunk(conn, "r1", 2, 999)  # another worker holds chunk 2: skipped, not taken twice
    chunk, rows = claim_next_chunk(conn, "r1", 0, 111, "m")
    assert chunk == 1 and [r["custom_id"] for r in rows] == ["nq_open|q1|control|0.0|0|closed"]
    assert conn.execute("select state, worker from requests where chunk = 1").fetchone()[:] == ("running", 111)
    assert claim_next_chunk(conn, "r1", 1, 111, "m")[0] == 3  # 2 is running elsewhere
    assert claim_next_chunk(conn, "r1", 3, 111, "m")[0] == 4
    assert claim_next_chunk(conn, "r1", 4, 111, "m") is None


def test_no_chunk_of_another_model_or_of_a_stopped_run(conn):
    _register(conn, ["m", "m", "other", "m"])
    assert claim_next_chunk(conn, "r1", 0, 111, "m")[0] == 1
    assert claim_next_chunk(conn, "r1", 1, 111, "m") is None  # chunk 2 is another model's: its own message
    set_stop(conn, "r1", True)
    assert claim_next_chunk(conn, "r1", 2, 111, "m") is None
    assert conn.execute("select count(*) from requests where state = 'running'").fetchone()[0] == 1


def test_two_workers_racing_for_the_next_chunk_never_share_a_request(tmp_path):
    conn = connect(tmp_path / "ledger.sqlite3")
    try:
        _register(conn, ["m"] * 40)
        got: dict[int, list[int]] = {1: [], 2: []}

        def take(pid: int) -> None:
            c, after = connect(tmp_path / "ledger.sqlite3"), 0
            while (nxt := claim_next_chunk(c, "r1", after, pid, "m")) is not None:
                after = nxt[0]
                got[pid] += [r["id"] for r in nxt[1]]

        threads = [threading.Thread(target=take, args=(pid,)) for pid in got]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(got[1] + got[2]) == sorted(set(got[1] + got[2])) and len(got[1] + got[2]) == 39
    finally:
        close_all()


def _feed(first: list[int], batches: list[list[int]], states: dict[int, str] | None = None):
    """Run ``feed_slots`` on 4 threads; each item holds its thread until the test lets it go."""
    from workers.inference import feed_slots

    running: set[int] = set()
    started: list[tuple[int, frozenset[int]]] = []  # (item, the items running when it started)
    lock = threading.Lock()
    gates = {i: threading.Event() for i in first + [i for b in batches for i in b]}
    recorded: list[tuple[int, str]] = []
    asked = []

    def run(item: int) -> str:
        with lock:
            started.append((item, frozenset(running)))
            running.add(item)
        gates[item].wait(10)
        with lock:
            running.discard(item)
        return (states or {}).get(item, "done")

    def more():
        asked.append(len(running))
        return batches.pop(0) if batches else None

    releaser = threading.Thread(target=lambda: [gates[i].set() or threading.Event().wait(0.01) for i in gates])
    releaser.start()
    feed_slots(4, first, more, run, lambda item, state: recorded.append((item, state)))
    releaser.join()
    return started, recorded, asked


def test_the_next_batch_starts_while_the_first_still_runs():
    started, recorded, _ = _feed([1, 2, 3, 4, 5, 6], [[7, 8, 9], [10]])
    assert sorted(i for i, _ in recorded) == list(range(1, 11)) and {s for _, s in recorded} == {"done"}
    when = dict(started)
    assert when[7] & {4, 5, 6}  # a freed thread took the next chunk's first request before this one drained
    assert [i for i, _ in started] == list(range(1, 11))  # chunk order, then seq order, kept


def test_a_released_request_ends_the_feeding():
    """Stopping: what was handed out still runs (and goes back as released); nothing more is claimed."""
    _, recorded, asked = _feed([1, 2, 3, 4, 5], [[6, 7, 8, 9, 10], [11]], states={6: "released"})
    assert sorted(i for i, _ in recorded) == list(range(1, 11)) and len(asked) == 1
