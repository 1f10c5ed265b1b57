"""Telemetry samples in a SQLite file (the run's ledger file, table ``telemetry_samples``).

Why each call opens its own connection: samples are written from the sampler thread and from any
spawned worker process, and read by ``status`` and the cost summary; a short connection per batch
(WAL, busy timeout: docs/architecture.md fact 9) is safe everywhere, and a read-only one (``status``)
never creates or writes anything. ``telemetry.store`` turns the rows into ``Sample`` objects.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TABLE = "telemetry_samples"
# The sample columns in ``telemetry.sampler.Sample``'s field order (a row reads back as Sample(*row)).
SAMPLE_FIELDS = (
    "t",
    "gpu_mem_used_mib",
    "gpu_mem_total_mib",
    "gpu_util_pct",
    "power_w",
    "temp_c",
    "cpu_pct",
    "rss_mib",
    "requests_done",
    "prompt_tokens",
    "completion_tokens",
)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    trial TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    t REAL NOT NULL,
    gpu_mem_used_mib REAL,
    gpu_mem_total_mib REAL,
    gpu_util_pct REAL,
    power_w REAL,
    temp_c REAL,
    cpu_pct REAL,
    rss_mib REAL,
    requests_done INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS {TABLE}_run_t ON {TABLE}(run_id, trial, t);
"""


def open_samples(db_path: Path, busy_timeout_s: float, readonly: bool = False) -> sqlite3.Connection:
    """A fresh connection (the caller closes it); read-only connections need an existing file."""
    if readonly:
        uri = db_path.resolve().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=busy_timeout_s)
    con = sqlite3.connect(str(db_path), timeout=busy_timeout_s)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    return con


def create_samples_table(db_path: Path, busy_timeout_s: float) -> None:
    """Create the folder, the file and the table (idempotent)."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = open_samples(db_path, busy_timeout_s)
    try:
        con.executescript(_SCHEMA)
    finally:
        con.close()


def insert_samples(db_path: Path, busy_timeout_s: float, rows: Sequence[Sequence[Any]]) -> None:
    """One transaction for the batch; each row is (run_id, trial, pid, *SAMPLE_FIELDS values)."""
    cols = ", ".join(("run_id", "trial", "pid", *SAMPLE_FIELDS))
    marks = ", ".join("?" * (3 + len(SAMPLE_FIELDS)))
    con = open_samples(db_path, busy_timeout_s)
    try:
        with con:
            con.executemany(f"INSERT INTO {TABLE} ({cols}) VALUES ({marks})", rows)
    finally:
        con.close()


def read_samples(db_path: Path, busy_timeout_s: float, readonly: bool, run_id: str, trial: str | None = None,
                 since: float | None = None, until: float | None = None) -> list[tuple[Any, ...]]:
    """Rows of SAMPLE_FIELDS of a run (optionally one trial and a time window), oldest first."""
    where, args = ["run_id = ?"], [run_id]
    if trial is not None:
        where.append("trial = ?")
        args.append(trial)
    if since is not None:
        where.append("t >= ?")
        args.append(since)
    if until is not None:
        where.append("t <= ?")
        args.append(until)
    sql = f"SELECT {', '.join(SAMPLE_FIELDS)} FROM {TABLE} WHERE {' AND '.join(where)} ORDER BY t, id"
    con = open_samples(db_path, busy_timeout_s, readonly)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def latest_samples(db_path: Path, busy_timeout_s: float, readonly: bool, run_id: str,
                   n: int) -> list[tuple[Any, ...]]:
    """The newest ``n`` rows of SAMPLE_FIELDS of a run, oldest first."""
    sql = f"SELECT {', '.join(SAMPLE_FIELDS)} FROM {TABLE} WHERE run_id = ? ORDER BY t DESC, id DESC LIMIT ?"
    con = open_samples(db_path, busy_timeout_s, readonly)
    try:
        return con.execute(sql, (run_id, n)).fetchall()[::-1]
    finally:
        con.close()
