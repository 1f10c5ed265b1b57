"""Reads the workers and the producer need (status has its own module: producer.ledger.status)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from producer.ledger.writes import HOST, NOT_BATCH_RUN

HEARTBEAT_S = 5.0
HEARTBEAT_STALE_S = 30.0


def get_run(conn: sqlite3.Connection, run_id: str) -> sqlite3.Row | None:
    return conn.execute("select * from runs where run_id = ?", (run_id,)).fetchone()


def latest_run(conn: sqlite3.Connection, fingerprint: str | None = None, unfinished: bool = False) -> str | None:
    sql = "select run_id from runs where 1 = 1"
    args: list[Any] = []
    if fingerprint is not None:
        sql += " and fingerprint = ?"
        args.append(fingerprint)
    if unfinished:
        sql += " and state != 'done'"
    row = conn.execute(sql + " order by created_at desc limit 1", args).fetchone()
    return row[0] if row else None


def is_stopped(conn: sqlite3.Connection, run_id: str) -> bool:
    row = conn.execute("select stop_requested from runs where run_id = ?", (run_id,)).fetchone()
    return bool(row is None or row[0])


def stop_reason(conn: sqlite3.Connection, run_id: str) -> str | None:
    """Why the run stopped by itself (engine down), or None."""
    try:
        row = conn.execute("select reason from stop_reasons where run_id = ?", (run_id,)).fetchone()
    except sqlite3.OperationalError:  # a ledger from before the table existed, opened read-only
        return None
    return row[0] if row else None


def request_count(conn: sqlite3.Connection, run_id: str) -> int:
    return conn.execute("select count(*) from requests where run_id = ?", (run_id,)).fetchone()[0]


def trial_names(conn: sqlite3.Connection, run_id: str) -> list[str]:
    """The run's trials in the order they were registered."""
    return [r[0] for r in conn.execute("select trial from trials where run_id = ? order by rowid", (run_id,))]


def chunk_trials(conn: sqlite3.Connection, run_id: str, chunk: int) -> list[str]:
    """Trials with requests in a chunk (a Fireworks part): shared requests of other trials ride in it."""
    return [r[0] for r in conn.execute("select distinct trial from requests where run_id = ? and chunk = ?",
                                       (run_id, chunk))]


def open_chunks(conn: sqlite3.Connection, run_id: str | None = None) -> list[tuple[str, int]]:
    """Chunks with requests that still need a message (pending or queued) in runs not stopped."""
    sql = (
        "select distinct r.run_id, r.chunk from requests r join runs u on u.run_id = r.run_id"
        " where r.state in ('pending', 'queued') and u.stop_requested = 0"
        f" and {NOT_BATCH_RUN}"  # batch runs: parts are a provider's jobs (workers/fireworks)
    )
    args: tuple[Any, ...] = ()
    if run_id is not None:
        sql += " and r.run_id = ?"
        args = (run_id,)
    return [(r[0], r[1]) for r in conn.execute(sql + " order by r.run_id, r.chunk", args)]


def unscored_chunks(conn: sqlite3.Connection, run_id: str | None = None) -> list[tuple[str, int]]:
    sql = "select distinct run_id, chunk from requests where state = 'done' and scored = 0"
    args: tuple[Any, ...] = ()
    if run_id is not None:
        sql += " and run_id = ?"
        args = (run_id,)
    return [(r[0], r[1]) for r in conn.execute(sql, args)]


def trials_ready_to_export(conn: sqlite3.Connection, run_id: str | None = None) -> list[tuple[str, str]]:
    """Trials with every request final and no export yet."""
    sql = (
        "select t.run_id, t.trial from trials t where t.export_state = 'pending' and not exists"
        " (select 1 from requests r where r.run_id = t.run_id and r.trial = t.trial"
        " and r.state in ('pending', 'queued', 'running'))"
    )
    args: tuple[Any, ...] = ()
    if run_id is not None:
        sql += " and t.run_id = ?"
        args = (run_id,)
    return [(r[0], r[1]) for r in conn.execute(sql, args)]


def chunk_has_waiting_work(conn: sqlite3.Connection, run_id: str, chunk: int) -> bool:
    """True when the chunk has requests waiting for the inference worker (run not stopped)."""
    row = conn.execute(
        "select 1 from requests r join runs u on u.run_id = r.run_id where r.run_id = ? and r.chunk = ?"
        " and r.state in ('pending', 'queued') and u.stop_requested = 0 limit 1", (run_id, chunk),
    ).fetchone()
    return row is not None


def inference_busy(conn: sqlite3.Connection) -> bool:
    """Some request is being run by a worker with a fresh heartbeat (the inference worker is draining)."""
    row = conn.execute(
        "select 1 from requests where state = 'running' and heartbeat >= ? limit 1",
        (time.time() - HEARTBEAT_STALE_S,),
    ).fetchone()
    return row is not None


def trial_is_complete(conn: sqlite3.Connection, run_id: str, trial: str) -> bool:
    row = conn.execute(
        "select 1 from requests where run_id = ? and trial = ? and state in ('pending', 'queued', 'running')"
        " limit 1", (run_id, trial),
    ).fetchone()
    return row is None


def live_worker_pids(conn: sqlite3.Connection) -> set[int]:
    """Pids on this host with a fresh heartbeat whose process still exists."""
    import psutil

    cutoff = time.time() - HEARTBEAT_STALE_S
    rows = conn.execute(
        "select pid from workers where host = ? and state = 'alive' and heartbeat >= ?", (HOST, cutoff)
    ).fetchall()
    live = set()
    for (pid,) in rows:
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                live.add(pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return live


def cache_hits(conn: sqlite3.Connection, run_id: str) -> int:
    """Requests of the run answered from the response cache (their engine facts say ``cache_hit``): one
    lookup each, as ``cache stats`` counts reuses; a sweep's copies of a shared answer (engine fact
    ``shared_control_from``) are the same lookup and are not counted again (issue 29)."""
    return int(conn.execute("select count(*) from results where run_id = ? and json_extract(engine, '$.cache_hit')"
                            " and json_extract(engine, '$.shared_control_from') is null",
                            (run_id,)).fetchone()[0])


def orphaned_workers(conn: sqlite3.Connection, live_pids: set[int]) -> set[int]:
    """Dead workers on this host that hold running requests and whose parent (the pool or the consumer
    that started them) is dead too: their whole process tree was killed at once."""
    import psutil

    rows = conn.execute(
        "select distinct w.pid, w.parent from workers w join requests r on r.worker = w.pid"
        " where w.host = ? and r.state = 'running' and w.parent is not null", (HOST,)).fetchall()
    out = set()
    for pid, parent in rows:
        if pid in live_pids:
            continue
        try:
            alive = psutil.Process(parent).status() != psutil.STATUS_ZOMBIE
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            alive = False
        if not alive:
            out.add(pid)
    return out


def result_rows(conn: sqlite3.Connection, run_id: str, trial: str) -> list[sqlite3.Row]:
    return conn.execute(
        "select * from results where run_id = ? and trial = ? order by custom_id", (run_id, trial)
    ).fetchall()


def transcript_rows(conn: sqlite3.Connection, run_id: str, trial: str) -> Iterator[sqlite3.Row]:
    """Every request of a trial with its result (result columns None when it has none), in custom_id
    order, streamed: a custom_id starts with ``dataset|item_id|``, so an item's requests are consecutive."""
    yield from conn.execute(
        "select r.custom_id, r.system_sha, r.body, s.text, s.finish_reason, s.prompt_tokens,"
        " s.completion_tokens, s.latency_s, s.request_id from requests r left join results s"
        " on s.run_id = r.run_id and s.trial = r.trial and s.custom_id = r.custom_id"
        " where r.run_id = ? and r.trial = ? order by r.custom_id", (run_id, trial),
    )


def failed_rows(conn: sqlite3.Connection, run_id: str, trial: str) -> list[sqlite3.Row]:
    return conn.execute(
        "select custom_id, attempts, last_error, finished_at from requests where run_id = ? and trial = ?"
        " and state = 'failed' order by custom_id", (run_id, trial),
    ).fetchall()


def done_unscored(conn: sqlite3.Connection, run_id: str, chunk: int) -> list[sqlite3.Row]:
    return conn.execute(
        "select r.id, r.custom_id, r.type, s.text from requests r join results s on s.run_id = r.run_id"
        " and s.trial = r.trial and s.custom_id = r.custom_id where r.run_id = ? and r.chunk = ?"
        " and r.state = 'done' and r.scored = 0", (run_id, chunk),
    ).fetchall()
