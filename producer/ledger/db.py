"""The ledger's schema and connections: the durable source of truth for what a run has done.

Why: Huey's dequeue is destructive (docs/architecture.md fact 3), so Huey only carries work; this SQLite
file records every expected request, its state and its one result. WAL mode, a busy timeout and
short transactions let the producer, ``status`` and several worker processes share it on Windows too
(docs/architecture.md fact 9).

States of a request: ``pending`` (registered, no queue message) -> ``queued`` (a message exists) ->
``running`` (claimed by a worker pid) -> ``done`` (a row in ``results``) or ``failed`` (last_error).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from producer.host.queue_paths import (
    LEDGER_WAY_OUT,
    QueueError,
    check_sqlite_file,
    describe_sqlite_error,
    ledger_path,
)
from producer.ledger.migrations import Migration, has_column, has_objects, migrate, run_sql
from producer.ledger.transactions import transaction  # noqa: F401 - the package's modules import it from here

BUSY_TIMEOUT_S = 60.0
OPEN_STATES = ("pending", "queued", "running")
FINAL_STATES = ("done", "failed")

# The schema as the first ledgers had it (``meta.schema_version`` 1): migration 0001. Never edit it;
# a change is a new migration at the end of MIGRATIONS (docs/architecture.md, "Ledger migrations").
INITIAL_DDL = (
    """create table if not exists meta (key text primary key, value text not null)""",
    """create table if not exists runs (
        run_id text primary key, config_path text, config_json text not null, fingerprint text not null,
        engine text not null, limit_items integer, experiments_dir text not null, prepared_dir text not null,
        state text not null default 'active', stop_requested integer not null default 0,
        created_at real not null, updated_at real not null)""",
    """create table if not exists trials (
        run_id text not null, trial text not null, model text not null, total integer not null,
        export_state text not null default 'pending', export_worker integer, exported_at real,
        analysis_state text, analysis_error text, primary key (run_id, trial))""",
    """create table if not exists texts (sha text primary key, text text not null)""",
    """create table if not exists requests (
        id integer primary key, run_id text not null, trial text not null, chunk integer not null,
        seq integer not null, custom_id text not null, model text not null, condition text not null,
        temp text not null, type text not null, system_sha text, body text not null,
        state text not null default 'pending', attempts integer not null default 0, last_error text,
        worker integer, heartbeat real, finished_at real, crashes integer not null default 0,
        scored integer not null default 0, em real, f1 real, abstained real, false_answer real,
        unsupported real,
        unique (run_id, trial, custom_id))""",
    """create index if not exists requests_chunk on requests (run_id, chunk, state)""",
    """create index if not exists requests_state on requests (state, run_id, chunk)""",
    """create index if not exists requests_status on requests (run_id, trial, condition, state)""",
    """create table if not exists results (
        run_id text not null, trial text not null, custom_id text not null, text text not null,
        finish_reason text, prompt_tokens integer, completion_tokens integer, total_tokens integer,
        usage_estimated integer not null default 0, latency_s real, engine text, request_id text,
        worker integer, created_at real not null, primary key (run_id, trial, custom_id))""",
    """create index if not exists results_time on results (run_id, created_at)""",
    # a sweep's identical requests (e.g. shared controls): generated once by owner_trial (producer.inputs.sweep_share)
    """create table if not exists shared_requests (
        run_id text not null, trial text not null, custom_id text not null, owner_trial text not null,
        primary key (run_id, trial, custom_id))""",
    """create table if not exists workers (
        host text not null, pid integer not null, role text not null, started_at real not null,
        heartbeat real not null, state text not null default 'alive', detail text,
        primary key (host, pid))""",
    # why a run stopped by itself (engine down); cleared when it resumes
    """create table if not exists stop_reasons (run_id text primary key, reason text not null, at real not null)""",
    """create table if not exists model_loads (
        id integer primary key, host text not null, pid integer not null, model_path text not null,
        settings text, loaded_at real not null)""",
    # one row per Fireworks batch part: dataset, job, state, progress (producer.ledger.fireworks)
    """create table if not exists fireworks_parts (
        run_id text not null, part integer not null, trial text not null, model text not null,
        temp text not null, condition text not null, type text not null, params text not null,
        n_rows integer not null, input_dataset_id text not null, output_dataset_id text not null,
        job_id text not null, state text not null default 'planned', job_state text, progress text,
        error text, created_at real not null, updated_at real not null, primary key (run_id, part))""",
)
INITIAL_OBJECTS = (
    "meta", "runs", "trials", "texts", "requests", "requests_chunk", "requests_state", "requests_status", "results",
    "results_time", "shared_requests", "workers", "stop_reasons", "model_loads", "fireworks_parts",
)
# In order, each applied once per ledger file and recorded in its ``_migrations`` table; append only.
MIGRATIONS = (
    Migration("0001_initial_schema", run_sql(*INITIAL_DDL), has_objects(*INITIAL_OBJECTS)),
    # the Fireworks poll deadline (commit 28b188f), first added in place by the old ADDED_COLUMNS
    Migration("0002_fireworks_parts_deadline_at", run_sql("alter table fireworks_parts add column deadline_at real"),
              has_column("fireworks_parts", "deadline_at")),
    # only deaths a worker caused itself are charged (issue 30, item 6): whether a request is being sent
    # right now, and which process started each worker (its whole tree killed: nobody's fault)
    Migration("0003_in_flight_and_worker_parent",
              run_sql("alter table requests add column in_flight integer not null default 0",
                      "alter table workers add column parent integer"),
              lambda conn: has_column("requests", "in_flight")(conn) and has_column("workers", "parent")(conn)),
    # the Anthropic batch provider (issue 25): its custom_id map and each part's batch, found after a crash
    # (producer/ledger/anthropic_batches.py)
    Migration("0004_anthropic_ids_and_batches", run_sql(
        "create table if not exists anthropic_ids (custom_id text primary key, provider_id text not null unique)",
        "create table if not exists anthropic_batches (api_base text not null, job_id text not null,"
        " n_requests integer not null, intent_at real not null, batch_id text, recorded_at real,"
        " primary key (api_base, job_id))")),
)

class ConnectionCache:
    """One open connection per process, thread and key: a thread-local dict keyed with the pid too, so
    a forked child never reuses its parent's connection. The ledger and the response cache keep one each."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _conns(self) -> dict[str, sqlite3.Connection]:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        return conns

    def get(self, key: str, open_new: Callable[[], sqlite3.Connection]) -> sqlite3.Connection:
        """The cached connection for ``key``, opened by ``open_new`` the first time."""
        conns, full = self._conns(), f"{os.getpid()}:{key}"
        conn = conns.get(full)
        if conn is None:
            conn = conns[full] = open_new()
        return conn

    def close_all(self) -> None:
        """Close this thread's connections."""
        conns = self._conns()
        for conn in conns.values():
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        conns.clear()


_conns = ConnectionCache()
_schema_ready: set[str] = set()
_schema_lock = threading.Lock()


def configure(conn: sqlite3.Connection, readonly: bool, busy_s: float = BUSY_TIMEOUT_S) -> None:
    """What every connection to a shared file needs: a busy timeout; writers also WAL (the response cache too)."""
    conn.execute(f"pragma busy_timeout={int(busy_s * 1000)}")
    if not readonly:
        _wal(conn, busy_s)
        conn.execute("pragma synchronous=normal")


def _wal(conn: sqlite3.Connection, busy_s: float = BUSY_TIMEOUT_S) -> None:
    """Switch to WAL, waiting like the busy timeout: SQLite answers "database is locked" at once, without
    its busy handler, when several processes switch a new file together (measured: 7 of 15 rounds of 6
    processes)."""
    deadline = time.monotonic() + busy_s
    while True:
        try:
            conn.execute("pragma journal_mode=wal")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the ledger's missing migrations, once per process and file (cheap after the first)."""
    key = f"{os.getpid()}:{path}"
    with _schema_lock:
        if key in _schema_ready:
            return
        migrate(conn, MIGRATIONS, path)
        _refuse_read_only(conn)
        _schema_ready.add(key)


def _refuse_read_only(conn: sqlite3.Connection) -> None:
    """Take and drop the write lock: a read-only file fails here, at open, as one line naming it (migrate
    writes nothing when nothing is missing, so the first write would otherwise come mid-run)."""
    conn.execute("begin immediate")
    try:
        conn.execute("update meta set value = value where 0")  # a write statement: refused on a read-only file
    finally:
        conn.execute("rollback")


def connect(path: Path | None = None, readonly: bool = False) -> sqlite3.Connection:
    """A connection for this process and thread (cached; fork- and thread-safe by keying on both)."""
    path = Path(path or ledger_path())
    return _conns.get(f"{path}:{readonly}", lambda: _connect_new(path, readonly))


def _connect_new(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        if not path.exists():
            raise FileNotFoundError(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    check_sqlite_file(path, LEDGER_WAY_OUT)
    try:
        return _open(path, readonly)
    except sqlite3.Error as exc:  # read-only, damaged, disk full: one line naming the file and the fix
        raise QueueError(describe_sqlite_error(exc, path, LEDGER_WAY_OUT)) from None


def _open(path: Path, readonly: bool) -> sqlite3.Connection:
    """Open, configure and (for writers) create the schema; the first query proves the file is a ledger."""
    if readonly:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S,
                               isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        configure(conn, readonly)
        if not readonly:
            _ensure_schema(conn, path)
        conn.execute("select count(*) from sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def close_all() -> None:
    """Close this thread's cached connections (tests, and before a process exits)."""
    _conns.close_all()
    _schema_ready.clear()


def check_writable(path: Path, timeout_s: float = 2.0) -> None:
    """Take and drop the write lock of an existing ledger file (``doctor``); raises ``sqlite3.Error``.

    Why a plain connection: the check must neither create the schema nor cache a connection."""
    con = sqlite3.connect(path, timeout=timeout_s)
    try:
        con.execute("begin immediate")
        con.rollback()
    finally:
        con.close()


def holds_run(path: Path, run_id: str) -> bool:
    """Whether the ledger file at ``path`` (opened read-only, created never) knows ``run_id``."""
    if not path.is_file():
        return False
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("select 1 from runs where run_id = ?", (run_id,)).fetchone() is not None
        finally:
            con.close()
    except sqlite3.Error:
        return False
