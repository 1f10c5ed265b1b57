"""Fireworks tables in the ledger: one row per part (dataset, job, state, progress) and shared results.

Why our own tables: the queue's own schema stays as it is; these add what a batch job needs to resume
without resubmitting (the job id is stored before and after creation, and is deterministic anyway)
and what ``status`` shows (job state, processed / total, failed rows).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from producer.ledger.db import transaction
from producer.sweep_share import SHARED_DDL

PART_STATES = ("planned", "submitted", "downloaded", "failed")

DDL = (
    """create table if not exists fireworks_parts (
        run_id text not null, part integer not null, trial text not null, model text not null,
        temp text not null, condition text not null, type text not null, params text not null,
        n_rows integer not null, input_dataset_id text not null, output_dataset_id text not null,
        job_id text not null, state text not null default 'planned', job_state text, progress text,
        error text, created_at real not null, updated_at real not null, deadline_at real,
        primary key (run_id, part))""",
    SHARED_DDL,  # shared generations of a sweep: producer.sweep_share
)


ADDED_COLUMNS = {"deadline_at": "real"}  # columns newer than a ledger's table: added in place


def ensure_tables(conn: sqlite3.Connection) -> None:
    for sql in DDL:
        conn.execute(sql)
    have = {r[1] for r in conn.execute("pragma table_info(fireworks_parts)")}
    for col, kind in ADDED_COLUMNS.items():
        if col not in have:
            try:
                conn.execute(f"alter table fireworks_parts add column {col} {kind}")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise


def register_parts(conn: sqlite3.Connection, run_id: str, parts: Iterable[dict[str, Any]],
                   shared: dict[tuple[str, str], str]) -> None:
    """Insert-or-ignore: a second enqueue of the same run keeps the states it already reached."""
    ensure_tables(conn)
    now = time.time()
    with transaction(conn):
        conn.executemany(
            "insert or ignore into fireworks_parts (run_id, part, trial, model, temp, condition, type, params,"
            " n_rows, input_dataset_id, output_dataset_id, job_id, created_at, updated_at)"
            " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, p["part"], p["trial"], p["model"], p["temp"], p["condition"], p["type"],
              json.dumps(p["params"], sort_keys=True), p["n_rows"], p["input_dataset_id"],
              p["output_dataset_id"], p["job_id"], now, now) for p in parts],
        )
        conn.executemany(
            "insert or ignore into shared_requests (run_id, trial, custom_id, owner_trial) values (?, ?, ?, ?)",
            [(run_id, t, c, o) for (t, c), o in shared.items()],
        )


def get_part(conn: sqlite3.Connection, run_id: str, part: int) -> sqlite3.Row | None:
    ensure_tables(conn)
    return conn.execute("select * from fireworks_parts where run_id = ? and part = ?", (run_id, part)).fetchone()


def parts_of(conn: sqlite3.Connection, run_id: str) -> list[sqlite3.Row]:
    try:
        return conn.execute("select * from fireworks_parts where run_id = ? order by part", (run_id,)).fetchall()
    except sqlite3.OperationalError:  # read-only connection to a ledger without our tables
        return []


def update_part(conn: sqlite3.Connection, run_id: str, part: int, **fields: Any) -> None:
    if "progress" in fields and not isinstance(fields["progress"], (str, type(None))):
        fields["progress"] = json.dumps(fields["progress"], sort_keys=True)
    fields["updated_at"] = time.time()
    cols = ", ".join(f"{k} = ?" for k in fields)
    with transaction(conn):
        conn.execute(f"update fireworks_parts set {cols} where run_id = ? and part = ?",
                     [*fields.values(), run_id, part])


def sharers(conn: sqlite3.Connection, run_id: str, owner_trial: str) -> dict[str, list[str]]:
    """custom_id -> trials that reuse the owner trial's generation of it."""
    out: dict[str, list[str]] = {}
    for row in conn.execute("select trial, custom_id from shared_requests where run_id = ? and owner_trial = ?",
                            (run_id, owner_trial)):
        out.setdefault(row[1], []).append(row[0])
    return out


def job_summary(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """Per part: trial, job id, state, processed / total, failed rows (for ``status``)."""
    rows = []
    for r in parts_of(conn, run_id):
        prog = json.loads(r["progress"]) if r["progress"] else {}
        rows.append({"part": r["part"], "trial": r["trial"], "job_id": r["job_id"], "state": r["state"],
                     "job_state": r["job_state"], "rows": r["n_rows"], "processed": prog.get("processed", 0),
                     "total": prog.get("total") or r["n_rows"], "failed": prog.get("failed", 0),
                     "error": r["error"]})
    return rows


def format_jobs(jobs: list[dict[str, Any]]) -> str:
    lines = ["  fireworks jobs:"]
    for j in jobs:
        state = (j["job_state"] or j["state"]).replace("JOB_STATE_", "")
        line = (f"    part {j['part']:>3} {j['trial']}  {state:<12} {j['processed']}/{j['total']}"
                f"  failed {j['failed']}  job {j['job_id']}")
        if j["error"]:
            line += f"  error: {j['error']}"
        lines.append(line)
    return "\n".join(lines)
