"""The one SQL statement on Huey's own queue database (``huey.sqlite3``): a bulk insert of messages.

Why here: the ledger package owns every SQL statement of the project. Why not Huey's ``enqueue``: it
commits each message alone, and a run enqueues thousands (docs/architecture.md fact 9).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def insert_messages(storage: Any, rows: Sequence[tuple[str, bytes, float]]) -> None:
    """Insert ``(queue name, serialized task, priority)`` rows into Huey's SQLite storage in ONE
    transaction."""
    with storage.db(commit=True) as curs:
        curs.executemany("insert into task (queue, data, priority) values (?, ?, ?)", rows)
