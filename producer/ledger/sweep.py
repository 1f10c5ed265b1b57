"""The ledger's record of a sweep's shared generations (table ``shared_requests``).

Why: a request identical across trials (e.g. the control of a prompt sweep, planned by
``producer.inputs.sweep_share``) is generated once by its owner trial; this table says which trial reuses
which owner's generation, for both backends (local chunks and Fireworks parts).
"""

from __future__ import annotations

import sqlite3

from producer.ledger.db import transaction


def insert_shared(conn: sqlite3.Connection, run_id: str, shared: dict[tuple[str, str], str]) -> None:
    """``shared[(trial, custom_id)] = owner_trial`` rows, insert-or-ignore, inside the caller's transaction."""
    conn.executemany(
        "insert or ignore into shared_requests (run_id, trial, custom_id, owner_trial) values (?, ?, ?, ?)",
        [(run_id, t, c, o) for (t, c), o in shared.items()],
    )


def register_shared(conn: sqlite3.Connection, run_id: str, shared: dict[tuple[str, str], str]) -> None:
    """Record who reuses whom (insert-or-ignore; before the requests, so no request runs twice)."""
    with transaction(conn):
        insert_shared(conn, run_id, shared)


def shared_counts(conn: sqlite3.Connection, run_id: str) -> dict[str, dict[str, int]]:
    """trial -> {owner_trial: number of requests it reuses}."""
    out: dict[str, dict[str, int]] = {}
    for row in conn.execute("select trial, owner_trial, count(*) from shared_requests where run_id = ?"
                            " group by trial, owner_trial", (run_id,)):
        out.setdefault(row[0], {})[row[1]] = row[2]
    return out


def sharers(conn: sqlite3.Connection, run_id: str, owner_trial: str) -> dict[str, list[str]]:
    """custom_id -> trials that reuse the owner trial's generation of it."""
    out: dict[str, list[str]] = {}
    for row in conn.execute("select trial, custom_id from shared_requests where run_id = ? and owner_trial = ?",
                            (run_id, owner_trial)):
        out.setdefault(row[1], []).append(row[0])
    return out
