"""The SqliteHuey instance that carries the work, in a module that imports no task (huey docs, imports.rst).

The task modules (``workers.tasks``, ``workers.batch.tasks``, ``workers.reconcile``) import it and
register on it; ``producer.huey_main`` imports it and them, and is what ``huey_consumer producer.huey``
loads. So importing this module opens the queue and registers nothing: no import cycle.

The database is ``queue/huey.sqlite3`` under the working directory, or under ``$EXCELLENCE_QUEUE_DIR``
when that is set (every process of a run must see the same value). WAL mode and a 60 s busy timeout
let several processes share it (docs/architecture.md fact 9). Huey only carries messages; the ledger
(``queue/ledger.sqlite3``) is the source of truth for what is done (docs/architecture.md fact 3).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path

from huey import SqliteHuey
from huey.api import Task

from producer.host.queue_paths import HUEY_WAY_OUT, QueueError, describe_sqlite_error, huey_path
from producer.ledger.huey_messages import insert_messages

HUEY_NAME = "excellence"


class _WatchedHuey(SqliteHuey):
    """SqliteHuey whose scheduler runs the startup hooks too: ``huey_consumer -k process`` forks a
    scheduler besides its workers, and the scheduler runs none of our tasks and no startup hook, only
    this read every second. The hook that matters ends a process with its parent (``workers.tasks``
    registers it: ``workers.parent_watch``)."""

    _started_in: int | None = None  # the process that ran the startup hooks

    def read_schedule(self, timestamp=None):  # noqa: ANN001, ANN201 - huey's signature
        if self._started_in != os.getpid():  # once per process: a forked scheduler is a new one
            self._started_in = os.getpid()
            for hook in list(self._startup.values()):
                hook()
        return super().read_schedule(timestamp)


def _open_huey() -> SqliteHuey:
    """A queue path that is a file, a garbage, read-only or full huey.sqlite3: one line (QueueError)."""
    path = huey_path()
    try:
        return _WatchedHuey(
            name=HUEY_NAME,
            filename=str(path),
            journal_mode="wal",
            timeout=60,
            results=False,  # results live in the ledger
            utc=True,
        )
    except sqlite3.Error as exc:
        raise QueueError(describe_sqlite_error(exc, path, HUEY_WAY_OUT)) from None


try:
    huey = _open_huey()
except QueueError as _exc:
    if Path(sys.argv[0]).stem.lower() != "huey_consumer":
        raise  # the CLI prints it as one line (one_line_errors)
    print(f"error: {_exc}", file=sys.stderr)  # huey_consumer would show a traceback around it
    raise SystemExit(_exc.exit_code) from None


def enqueue_many(tasks: Iterable[Task]) -> int:
    """Enqueue many messages in ONE SQLite transaction (Huey's own ``enqueue`` commits each one)."""
    rows = [(huey.storage.name, huey.serialize_task(t), float(t.priority or 0)) for t in tasks]
    if not rows:
        return 0
    insert_messages(huey.storage, rows)
    return len(rows)


def queued_task_args(task_name: str) -> set[tuple]:
    """Args of every message of ``task_name`` waiting in the queue or the schedule (for reconcile)."""
    found: set[tuple] = set()
    for task in huey.pending() + huey.scheduled():
        if type(task).__name__ == task_name:
            found.add(tuple(task.args))
    return found
