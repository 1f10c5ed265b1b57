"""The response cache (config ``cache: true``): a SQLite file next to the ledger, ``response_cache.sqlite3``.

Why a separate file: the cache outlives runs and ``cache clear`` may delete it at any time, while the
ledger holds each run's own progress and results. Why here: every table, query and write lives in
``producer.ledger`` (tests/test_ledger_owns_sql.py); ``workers.response_cache`` decides what is
cached, this module only stores it. Same discipline as the ledger: WAL, a busy timeout, short
``begin immediate`` transactions, so worker processes on Windows and Linux share the file safely and a
crash leaves either the whole entry or none.

Tables: ``responses`` (key -> the stored answer as JSON, which engine and model identity produced it,
how often it was reused) and ``file_hashes`` (the sha256 of a GGUF model file, memoised by path,
size and mtime: hashing a multi-GB file takes a while and is done once per file version).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from producer.host.queue_paths import (
    CACHE_WAY_OUT,
    QueueError,
    check_sqlite_file,
    describe_sqlite_error,
    response_cache_path,
)
from producer.ledger.db import ConnectionCache, configure, transaction
from producer.ledger.migrations import Migration, has_objects, migrate, run_sql

# The cache is an optimisation: a writer that holds it longer than this (another process, a backup tool)
# makes the workers run without it (workers/response_cache.py) instead of waiting on every lookup.
CACHE_BUSY_S = 5.0

# The first cache schema (``meta.schema_version`` 1); a change is a new migration in CACHE_MIGRATIONS.
CACHE_DDL = (
    """create table if not exists meta (key text primary key, value text not null)""",
    """create table if not exists responses (
        key text primary key, engine text not null, model text not null, model_id text not null,
        result text not null, created_at real not null, hits integer not null default 0, last_hit_at real)""",
    """create index if not exists responses_model on responses (engine, model_id)""",
    """create table if not exists file_hashes (
        path text primary key, size integer not null, mtime_ns integer not null, sha256 text not null,
        hashed_at real not null)""",
)
CACHE_MIGRATIONS = (
    Migration("0001_initial_schema", run_sql(*CACHE_DDL), has_objects("meta", "responses", "responses_model",
                                                                      "file_hashes")),
)

_conns = ConnectionCache()


def cache_connect(path: Path | None = None) -> sqlite3.Connection:
    """A connection for this process and thread (cached), schema created; one-line ``QueueError`` when
    the file is damaged, read-only or not SQLite."""
    path = Path(path or response_cache_path())
    return _conns.get(str(path), lambda: _open_cache(path))


def _open_cache(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    check_sqlite_file(path, CACHE_WAY_OUT)
    try:
        conn = sqlite3.connect(str(path), timeout=CACHE_BUSY_S, isolation_level=None, check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            configure(conn, readonly=False, busy_s=CACHE_BUSY_S)
            migrate(conn, CACHE_MIGRATIONS, path)
        except BaseException:
            conn.close()
            raise
    except sqlite3.Error as exc:
        raise QueueError(describe_sqlite_error(exc, path, CACHE_WAY_OUT)) from None
    return conn


def cache_close_all() -> None:
    """Close this thread's cache connections (``cache clear``, tests)."""
    _conns.close_all()


def get_response(conn: sqlite3.Connection, key: str) -> str | None:
    """The stored answer (JSON text) for ``key``, or None."""
    row = conn.execute("select result from responses where key = ?", (key,)).fetchone()
    return row["result"] if row else None


def note_hit(conn: sqlite3.Connection, key: str) -> None:
    with transaction(conn):
        conn.execute("update responses set hits = hits + 1, last_hit_at = ? where key = ?", (time.time(), key))


def put_response(conn: sqlite3.Connection, key: str, engine: str, model: str, model_id: str, result: str) -> bool:
    """Store an answer once (the first one stays: the key is deterministic). True when it was new."""
    with transaction(conn):
        cur = conn.execute(
            "insert or ignore into responses (key, engine, model, model_id, result, created_at)"
            " values (?, ?, ?, ?, ?, ?)", (key, engine, model, model_id, result, time.time()))
    return cur.rowcount == 1


def known_file_hash(conn: sqlite3.Connection, path: str, size: int, mtime_ns: int) -> str | None:
    row = conn.execute("select sha256 from file_hashes where path = ? and size = ? and mtime_ns = ?",
                       (path, size, mtime_ns)).fetchone()
    return row["sha256"] if row else None


def remember_file_hash(conn: sqlite3.Connection, path: str, size: int, mtime_ns: int, sha256: str) -> None:
    with transaction(conn):
        conn.execute("insert or replace into file_hashes (path, size, mtime_ns, sha256, hashed_at)"
                     " values (?, ?, ?, ?, ?)", (path, size, mtime_ns, sha256, time.time()))


def cache_stats(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per engine and model identity: entries, reuses, stored bytes, first and last use."""
    rows = conn.execute(
        "select engine, model, model_id, count(*) as entries, coalesce(sum(hits), 0) as hits,"
        " coalesce(sum(length(result)), 0) as bytes, min(created_at) as first_at,"
        " max(coalesce(last_hit_at, created_at)) as last_at"
        " from responses group by engine, model, model_id order by engine, model, model_id").fetchall()
    return [dict(r) for r in rows]


def clear_responses(conn: sqlite3.Connection) -> int:
    """Delete every stored answer (the file-hash memo stays: it is no answer) and give the space back."""
    with transaction(conn):
        n = conn.execute("delete from responses").rowcount
    conn.execute("vacuum")
    conn.execute("pragma wal_checkpoint(truncate)")
    return n
