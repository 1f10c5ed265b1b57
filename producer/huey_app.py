"""``producer.huey``: the SqliteHuey instance that carries the work (``huey_consumer producer.huey``).

The database is ``queue/huey.sqlite3`` under the working directory, or under ``$EXCELLENCE_QUEUE_DIR``
when that is set (every process of a run must see the same value). WAL mode and a 60 s busy timeout
let several processes share it (docs/architecture.md fact 9). Huey only carries messages; the ledger
(``queue/ledger.sqlite3``) is the source of truth for what is done (docs/architecture.md fact 3).
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path

from huey import SqliteHuey
from huey.api import Task

from producer.ledger.huey_messages import insert_messages
from producer.queue_paths import HUEY_WAY_OUT, QueueError, describe_sqlite_error, huey_path

HUEY_NAME = "excellence"


class _WatchedHuey(SqliteHuey):
    """SqliteHuey whose processes end with their parent: ``huey_consumer -k process`` forks a scheduler
    besides its workers, and the scheduler runs none of our tasks, only this read every second."""

    def read_schedule(self, timestamp=None):  # noqa: ANN001, ANN201 - huey's signature
        _watch_parent()
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


@huey.on_startup()
def _watch_parent() -> None:
    """Under ``huey_consumer -k process``: a worker exits when the consumer dies (kill -9) instead of
    running on with the model lock and the VRAM (workers.parent_watch; once per process)."""
    from workers.parent_watch import start  # lazy: the task registration cycle

    start()


@huey.pre_execute()
def _orphans_take_nothing(task: Task) -> None:
    """A worker whose consumer died takes no more tasks: it would run through the whole queue as
    no-ops before it exits (``workers.parent_watch.hold_if_orphaned`` blocks until it has)."""
    from workers.parent_watch import hold_if_orphaned  # lazy: the task registration cycle

    hold_if_orphaned()


# The task modules must be imported whenever producer.huey is, so that huey_consumer knows them.
import workers.fireworks.tasks  # noqa: E402,F401
import workers.tasks  # noqa: E402,F401
