"""Every write to the ledger, each one short transaction.

Why: one module owns the state transitions, so "a result is written once" and "a claimed request
belongs to one live worker" are enforced in one place (UNIQUE keys plus guarded UPDATEs).
"""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from config.engines import BATCH_BACKENDS, batch_dry_run_engine
from config.secrets import redact_secrets
from producer.ledger.db import transaction

# a run whose requests are a batch provider's parts, never claimed by the local workers: the exact engine
# names (a prefix match would take the local engine openai_compat for the openai batch backend)
_BATCH_ENGINES = sorted(name for b in BATCH_BACKENDS for name in (b, batch_dry_run_engine(b)))
NOT_BATCH_RUN = "u.engine not in ({})".format(", ".join(f"'{name}'" for name in _BATCH_ENGINES))

HOST = socket.gethostname()
MAX_CRASHES = 3  # a request that kills its worker this often is failed, not retried forever


@dataclass(frozen=True)
class NewRequest:
    """One expected request, as the producer registers it."""

    trial: str
    chunk: int
    seq: int
    custom_id: str
    model: str
    condition: str
    temp: str
    type: str
    body: dict[str, Any]


def _split_system(body: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
    """Store each system prompt once (``texts``): long treatment prompts x 100,000 requests add up."""
    messages = body.get("messages") or []
    if messages and messages[0].get("role") == "system":
        text = messages[0].get("content") or ""
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        slim = dict(body)
        slim["messages"] = [{"role": "system", "content": None}] + list(messages[1:])
        return sha, text, slim
    return None, None, body


def register_run(conn: sqlite3.Connection, run: dict[str, Any], trials: Sequence[dict[str, Any]],
                 requests: Iterable[NewRequest]) -> int:
    """Register a run, its trials and every expected request in ONE transaction; returns rows added.

    Idempotent: rows already present are kept (insert-or-ignore), so a producer killed half-way
    leaves either nothing or everything, and a second call adds only what is missing.
    """
    now = time.time()
    added = 0
    with transaction(conn):
        conn.execute(
            "insert or ignore into runs (run_id, config_path, config_json, fingerprint, engine, limit_items,"
            " experiments_dir, prepared_dir, state, stop_requested, created_at, updated_at)"
            " values (:run_id, :config_path, :config_json, :fingerprint, :engine, :limit_items,"
            " :experiments_dir, :prepared_dir, 'active', 0, :now, :now)",
            {**run, "now": now},
        )
        conn.executemany(
            "insert or ignore into trials (run_id, trial, model, total) values (?, ?, ?, ?)",
            [(run["run_id"], t["trial"], t["model"], t["total"]) for t in trials],
        )
        texts: dict[str, str] = {}

        def rows() -> Iterator[tuple[Any, ...]]:  # streamed: a large run is never all in memory
            for r in requests:
                sha, text, body = _split_system(r.body)
                if sha is not None:
                    texts[sha] = text or ""
                yield (run["run_id"], r.trial, r.chunk, r.seq, r.custom_id, r.model, r.condition, r.temp,
                       r.type, sha, json.dumps(body, ensure_ascii=False, separators=(",", ":")))

        before = conn.total_changes
        conn.executemany(
            "insert or ignore into requests (run_id, trial, chunk, seq, custom_id, model, condition, temp,"
            " type, system_sha, body) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows(),
        )
        added = conn.total_changes - before
        conn.executemany("insert or ignore into texts (sha, text) values (?, ?)", list(texts.items()))
    return added


def mark_chunks_queued(conn: sqlite3.Connection, run_id: str, chunks: Iterable[int]) -> None:
    """After their Huey messages are committed: pending -> queued."""
    with transaction(conn):
        conn.executemany(
            "update requests set state = 'queued' where run_id = ? and chunk = ? and state = 'pending'",
            [(run_id, c) for c in chunks],
        )


def claim_chunk(conn: sqlite3.Connection, run_id: str, chunk: int, pid: int) -> list[sqlite3.Row]:
    """Take the open requests of a chunk for this worker (skips done/failed/running ones)."""
    now = time.time()
    with transaction(conn):
        stopped = conn.execute(
            "select stop_requested from runs where run_id = ?", (run_id,)
        ).fetchone()
        if stopped is None or stopped[0]:
            return []
        conn.execute(
            "update requests set state = 'running', worker = ?, heartbeat = ?"
            " where run_id = ? and chunk = ? and state in ('pending', 'queued') and not exists"
            " (select 1 from shared_requests s where s.run_id = requests.run_id and s.trial = requests.trial"
            " and s.custom_id = requests.custom_id)",  # reused from the owner trial's generation
            (pid, now, run_id, chunk),
        )
        return conn.execute(
            "select r.id, r.run_id, r.trial, r.custom_id, r.model, r.condition, r.temp, r.type, r.body,"
            " r.attempts, t.text as system_text from requests r left join texts t on t.sha = r.system_sha"
            " where r.run_id = ? and r.chunk = ? and r.state = 'running' and r.worker = ? order by r.seq",
            (run_id, chunk, pid),
        ).fetchall()


def claim_next_chunk(conn: sqlite3.Connection, run_id: str, after: int, pid: int,
                     model: str) -> tuple[int, list[sqlite3.Row]] | None:
    """Claim the run's next queued chunk after ``after`` (chunk order, so each condition's requests keep
    the order the prefix cache relies on) for this worker, as ``claim_chunk`` does: (chunk, rows), or
    None when the next queued chunk is of another model, the run is stopped or nothing is queued.

    Why: the batched engine takes the next chunk while the current one drains, so a freed slot is
    refilled at once; the chunk's own message later finds nothing to claim."""
    while True:
        row = conn.execute(
            "select r.chunk, r.model from requests r join runs u on u.run_id = r.run_id"
            " where r.run_id = ? and r.chunk > ? and r.state = 'queued' and u.stop_requested = 0"
            " order by r.chunk, r.seq limit 1",
            (run_id, after),
        ).fetchone()
        if row is None or row[1] != model:
            return None
        rows = claim_chunk(conn, run_id, row[0], pid)
        if rows:
            return row[0], rows
        after = row[0]  # taken meanwhile, or only reused (shared) requests: look further


def next_queued_chunk(conn: sqlite3.Connection) -> tuple[str, int] | None:
    """The oldest queued chunk of a run that is not stopped (the inference worker drains these)."""
    row = conn.execute(
        "select r.run_id, r.chunk from requests r join runs u on u.run_id = r.run_id"
        f" where r.state = 'queued' and u.stop_requested = 0 and {NOT_BATCH_RUN}"
        " order by r.run_id, r.chunk limit 1"
    ).fetchone()
    return (row[0], row[1]) if row else None


def release_requests(conn: sqlite3.Connection, ids: Sequence[int], state: str = "queued") -> None:
    """Give claimed requests back (clean stop): ``queued`` (a message is re-sent) or ``pending``."""
    if not ids:
        return
    with transaction(conn):
        conn.executemany(
            "update requests set state = ?, worker = null where id = ? and state = 'running'",
            [(state, i) for i in ids],
        )


def mark_in_flight(conn: sqlite3.Connection, request_id: int, in_flight: bool) -> None:
    """Charge (``True``) or refund (``False``) a worker death to the request being sent right now.

    Why charge in advance: a process killed by the request it runs (a crash in the engine) cannot write
    anything afterwards, so the charge must already be there; a request merely claimed, or waiting for
    the model to load, is never charged (``reset_dead_work`` only reads the counter)."""
    with transaction(conn):
        conn.execute("update requests set crashes = max(crashes + ?, 0), in_flight = ? where id = ?",
                     (1 if in_flight else -1, int(in_flight), request_id))


def record_result(conn: sqlite3.Connection, req: sqlite3.Row, result: Any, attempts: int, pid: int,
                  refund_crash: bool = False) -> bool:
    """Store the one result of a request (insert-or-ignore on its key) and mark it done.

    Returns False when a result already existed: a task that ran twice cannot add a second row.
    ``refund_crash``: the request was charged by ``mark_in_flight`` (refunded in the same transaction).
    """
    usage = result.usage
    now = time.time()
    with transaction(conn):
        cur = conn.execute(
            "insert or ignore into results (run_id, trial, custom_id, text, finish_reason, prompt_tokens,"
            " completion_tokens, total_tokens, usage_estimated, latency_s, engine, request_id, worker,"
            " created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (req["run_id"], req["trial"], req["custom_id"], result.text, result.finish_reason,
             usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, int(bool(usage.estimated)),
             result.latency_s, json.dumps(result.engine, ensure_ascii=False, default=str),
             result.request_id, pid, now),
        )
        conn.execute(
            "update requests set state = 'done', attempts = attempts + ?, last_error = null,"
            " finished_at = ?, heartbeat = ?, crashes = max(crashes - ?, 0) where id = ?",
            (attempts, now, now, int(refund_crash), req["id"]),
        )
        _copy_to_sharers(conn, req["run_id"], req["trial"], req["custom_id"], now)
    return cur.rowcount == 1


def _copy_to_sharers(conn: sqlite3.Connection, run_id: str, owner: str, custom_id: str, now: float) -> None:
    """Trials that reuse this generation (producer.inputs.sweep_share) get the same result, in the same transaction."""
    keys = (run_id, owner, custom_id)
    conn.execute(
        "insert or ignore into results (run_id, trial, custom_id, text, finish_reason, prompt_tokens,"
        " completion_tokens, total_tokens, usage_estimated, latency_s, engine, request_id, worker, created_at)"
        " select r.run_id, s.trial, r.custom_id, r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens,"
        " r.total_tokens, r.usage_estimated, r.latency_s,"
        " json_set(coalesce(r.engine, '{}'), '$.shared_control_from', r.trial), r.request_id, r.worker, r.created_at"
        " from results r join shared_requests s on s.run_id = r.run_id and s.owner_trial = r.trial"
        " and s.custom_id = r.custom_id where r.run_id = ? and r.trial = ? and r.custom_id = ?", keys)
    conn.execute(
        "update requests set state = 'done', last_error = null, finished_at = ? where state != 'done'"
        " and run_id = ? and custom_id = ? and trial in (select trial from shared_requests where run_id = ?"
        " and owner_trial = ? and custom_id = ?)", (now, run_id, custom_id, run_id, owner, custom_id))


def record_failure(conn: sqlite3.Connection, req: sqlite3.Row, error: str, attempts: int,
                   refund_crash: bool = False) -> None:
    """A request that failed for good: state failed with its one-line error (never a result row; every
    known key redacted: config/secrets.py)."""
    now = time.time()
    error = redact_secrets(error)
    with transaction(conn):
        conn.execute(
            "update requests set state = 'failed', attempts = attempts + ?, last_error = ?, finished_at = ?,"
            " crashes = max(crashes - ?, 0) where id = ? and state != 'done'",
            (attempts, " ".join(str(error).split())[:2000], now, int(refund_crash), req["id"]),
        )
        conn.execute(  # trials reusing this generation fail with it (retry-failed resets both)
            "update requests set state = 'failed', last_error = ?, finished_at = ? where state != 'done'"
            " and run_id = ? and custom_id = ? and trial in (select trial from shared_requests where run_id = ?"
            " and owner_trial = ? and custom_id = ?)",
            (" ".join(str(error).split())[:2000], now, req["run_id"], req["custom_id"], req["run_id"],
             req["trial"], req["custom_id"]))


def record_scores(conn: sqlite3.Connection, scores: Iterable[tuple[int, dict[str, Any]]]) -> None:
    rows = [(s.get("em"), s.get("f1"), s.get("abstained"), s.get("false_answer"), s.get("unsupported"), rid)
            for rid, s in scores]
    if not rows:
        return
    with transaction(conn):
        conn.executemany(
            "update requests set scored = 1, em = ?, f1 = ?, abstained = ?, false_answer = ?, unsupported = ?"
            " where id = ?",
            rows,
        )


def set_stop(conn: sqlite3.Connection, run_id: str, stop: bool, reason: str | None = None) -> int:
    """Raise or clear a run's stop flag; ``reason`` says why a run stopped by itself (shown by status)."""
    with transaction(conn):
        return _set_stop_in(conn, run_id, stop, reason)


def _set_stop_in(conn: sqlite3.Connection, run_id: str, stop: bool, reason: str | None) -> int:
    """``set_stop``'s statements, inside the caller's transaction."""
    if reason is not None:
        reason = redact_secrets(reason)
        conn.execute("insert or replace into stop_reasons (run_id, reason, at) values (?, ?, ?)",
                     (run_id, reason, time.time()))
    elif not stop:
        conn.execute("delete from stop_reasons where run_id = ?", (run_id,))
    cur = conn.execute(
        "update runs set stop_requested = ?, state = case when state = 'done' then state"
        " when ? then 'stopped' else 'active' end, updated_at = ? where run_id = ?",
        (int(stop), int(stop), time.time(), run_id),
    )
    if stop:  # work not yet taken is no longer queued: resume re-sends it
        conn.execute("update requests set state = 'pending' where run_id = ? and state = 'queued'", (run_id,))
    else:  # an export that could not write (disk full, read-only) is tried again on resume
        conn.execute("update trials set export_state = 'pending', export_worker = null"
                     " where run_id = ? and export_state = 'failed'", (run_id,))
    return cur.rowcount


def fail_export(conn: sqlite3.Connection, run_id: str, trial: str, reason: str) -> None:
    """A trial's files could not be written: its export is ``failed`` (reconcile does not send it again
    in a loop) and the run stops with ``reason``, in one transaction; resuming the run retries it."""
    with transaction(conn):
        conn.execute("update trials set export_state = 'failed', export_worker = null"
                     " where run_id = ? and trial = ?", (run_id, trial))
        _set_stop_in(conn, run_id, True, reason)


def reopen_failed(conn: sqlite3.Connection, run_id: str, ids: Sequence[int]) -> int:
    """Failures an outage caused go back to ``pending`` (with their trial's export), so the printed
    ``run --resume`` sends them again; requests that failed for their own reasons stay failed."""
    if not ids:
        return 0
    with transaction(conn):
        before = conn.total_changes
        conn.executemany(
            "update requests set state = 'pending', worker = null, last_error = null, finished_at = null"
            " where id = ? and run_id = ? and state = 'failed'", [(i, run_id) for i in ids])
        n = conn.total_changes - before
        if n:
            conn.execute(
                "update trials set export_state = 'pending' where run_id = ? and trial in"
                " (select distinct trial from requests where run_id = ? and state = 'pending')",
                (run_id, run_id),
            )
    return n


def reopen_failed_analyses(conn: sqlite3.Connection, run_id: str) -> int:
    """Trials whose files were exported but whose analysis failed (disk full, a file in the way) are
    exported and analysed again: ``run --resume`` after the fix writes the report. Returns how many."""
    with transaction(conn):
        n = conn.execute(
            "update trials set export_state = 'pending', analysis_state = null, analysis_error = null"
            " where run_id = ? and export_state = 'done' and analysis_state = 'failed'", (run_id,)).rowcount
        if n:
            conn.execute("update runs set state = 'active', updated_at = ? where run_id = ? and state = 'done'",
                         (time.time(), run_id))
    return n


def release_worker(conn: sqlite3.Connection, pid: int, refund: Sequence[int] = ()) -> int:
    """A worker leaving on its own (its pool died) gives back everything it claimed; ``refund``: the
    requests it had in flight, whose crash charge is taken back (leaving is not a crash)."""
    with transaction(conn):
        conn.executemany("update requests set crashes = max(crashes - 1, 0) where id = ? and worker = ?"
                         " and state = 'running'", [(i, pid) for i in refund])
        n = conn.execute("update requests set state = 'queued', worker = null where state = 'running'"
                         " and worker = ?", (pid,)).rowcount
        conn.execute("update trials set export_state = 'pending', export_worker = null"
                     " where export_state = 'running' and export_worker = ?", (pid,))
        conn.execute("update workers set state = 'stopped', heartbeat = ? where host = ? and pid = ?",
                     (time.time(), HOST, pid))
    return n


def retry_failed(conn: sqlite3.Connection, run_id: str) -> int:
    """Failed requests become pending again (``enqueue --retry-failed``); their trial is re-exported."""
    with transaction(conn):
        cur = conn.execute(
            "update requests set state = 'pending', worker = null where run_id = ? and state = 'failed'",
            (run_id,),
        )
        if cur.rowcount:
            conn.execute(
                "update trials set export_state = 'pending' where run_id = ? and trial in"
                " (select distinct trial from requests where run_id = ? and state = 'pending')",
                (run_id, run_id),
            )
            conn.execute("update runs set state = 'active' where run_id = ?", (run_id,))
    return cur.rowcount


def heartbeat_worker(conn: sqlite3.Connection, pid: int, role: str, detail: str | None = None,
                     state: str = "alive", parent: int | None = None) -> None:
    """A worker's heartbeat; ``parent`` (the process that started it) is kept from its first one."""
    now = time.time()
    with transaction(conn):
        conn.execute(
            "insert into workers (host, pid, role, started_at, heartbeat, state, detail, parent)"
            " values (?, ?, ?, ?, ?, ?, ?, ?) on conflict (host, pid) do update set role = excluded.role,"
            " heartbeat = excluded.heartbeat, state = excluded.state,"
            " detail = coalesce(excluded.detail, workers.detail), parent = coalesce(workers.parent, excluded.parent)",
            (HOST, pid, role, now, now, state, detail, parent),
        )
        conn.execute("update requests set heartbeat = ? where state = 'running' and worker = ?", (now, pid))


def record_model_load(conn: sqlite3.Connection, pid: int, model_path: str, settings: dict[str, Any]) -> None:
    with transaction(conn):
        conn.execute(
            "insert into model_loads (host, pid, model_path, settings, loaded_at) values (?, ?, ?, ?, ?)",
            (HOST, pid, model_path, json.dumps(settings, sort_keys=True, default=str), time.time()),
        )


def claim_export(conn: sqlite3.Connection, run_id: str, trial: str, pid: int) -> bool:
    """The one worker that exports a finished trial (pending -> running) wins; others skip."""
    with transaction(conn):
        open_left = conn.execute(
            "select count(*) from requests where run_id = ? and trial = ? and state in"
            " ('pending', 'queued', 'running')", (run_id, trial),
        ).fetchone()[0]
        if open_left:
            return False
        cur = conn.execute(
            "update trials set export_state = 'running', export_worker = ? where run_id = ? and trial = ?"
            " and export_state = 'pending'", (pid, run_id, trial),
        )
        return cur.rowcount == 1


def finish_export(conn: sqlite3.Connection, run_id: str, trial: str, state: str = "done",
                  analysis_state: str | None = None, analysis_error: str | None = None) -> bool:
    """Record a trial's export; True when it was the run's last trial (the run is now done)."""
    with transaction(conn):
        conn.execute(
            "update trials set export_state = ?, exported_at = ?, analysis_state = coalesce(?, analysis_state),"
            " analysis_error = ? where run_id = ? and trial = ?",
            (state, time.time(), analysis_state, redact_secrets(analysis_error) if analysis_error else None,
             run_id, trial),
        )
        left = conn.execute(
            "select count(*) from trials where run_id = ? and export_state != 'done'", (run_id,)
        ).fetchone()[0]
        if not left:
            conn.execute("update runs set state = 'done', updated_at = ? where run_id = ?", (time.time(), run_id))
    return not left


def reset_dead_work(conn: sqlite3.Connection, live_pids: set[int], orphaned: set[int] | frozenset[int] = frozenset(),
                    ) -> int:
    """Work held by dead workers goes back to the queue (requests -> queued, exports -> pending).

    A request that was in flight (``mark_in_flight``) when its worker died MAX_CRASHES times is failed
    instead: it is what kills the worker (a crash loop must end). A death before anything was sent
    (killed while loading the model, out of memory at load) is charged to no request, and neither is
    the death of a worker in ``orphaned`` (its parent died too: the whole tree was killed, by a power
    loss, ``timeout -s KILL`` or a service manager, which says nothing about the request)."""
    live = json.dumps(sorted(live_pids))
    dead = "(worker is null or worker not in (select value from json_each(:live)))"
    with transaction(conn):
        conn.execute(
            "update requests set crashes = max(crashes - 1, 0), in_flight = 0 where state = 'running'"
            " and in_flight = 1 and worker in (select value from json_each(:orphaned))",
            {"orphaned": json.dumps(sorted(orphaned))},
        )
        conn.execute(
            f"update requests set state = 'failed', finished_at = :now, last_error = :err where state = 'running'"
            f" and crashes >= :max and {dead}",
            {"live": live, "now": time.time(), "max": MAX_CRASHES,
             "err": f"the worker process died {MAX_CRASHES} times while running this request"},
        )
        n = conn.execute(
            f"update requests set state = 'queued', worker = null, in_flight = 0 where state = 'running' and {dead}",
            {"live": live},
        ).rowcount
        conn.execute(
            "update trials set export_state = 'pending', export_worker = null where export_state = 'running'"
            " and (export_worker is null or export_worker not in (select value from json_each(:live)))",
            {"live": live},
        )
        conn.execute(
            "update workers set state = 'dead' where host = :host and state = 'alive'"
            " and pid not in (select value from json_each(:live))", {"live": live, "host": HOST},
        )
    return n
