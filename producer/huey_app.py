"""``producer.huey``: the SqliteHuey instance that carries the work (``huey_consumer producer.huey``).

The database is ``queue/huey.sqlite3`` under the working directory, or under ``$EXCELLENCE_QUEUE_DIR``
when that is set (every process of a run must see the same value). WAL mode and a 60 s busy timeout
let several processes share it (ARCHITECTURE fact 9). Huey only carries messages; the ledger
(``queue/ledger.sqlite3``) is the source of truth for what is done (ARCHITECTURE fact 3).
"""

from __future__ import annotations

from collections.abc import Iterable

from huey import SqliteHuey
from huey.api import Task

from producer.queue_paths import huey_path

HUEY_NAME = "excellence"

huey = SqliteHuey(
    name=HUEY_NAME,
    filename=str(huey_path()),
    journal_mode="wal",
    timeout=60,
    results=False,  # results live in the ledger
    utc=True,
)


def enqueue_many(tasks: Iterable[Task]) -> int:
    """Enqueue many messages in ONE SQLite transaction (Huey's own ``enqueue`` commits each one)."""
    rows = [(huey.storage.name, huey.serialize_task(t), float(t.priority or 0)) for t in tasks]
    if not rows:
        return 0
    with huey.storage.db(commit=True) as curs:
        curs.executemany("insert into task (queue, data, priority) values (?, ?, ?)", rows)
    return len(rows)


def queued_task_args(task_name: str) -> set[tuple]:
    """Args of every message of ``task_name`` waiting in the queue or the schedule (for reconcile)."""
    found: set[tuple] = set()
    for task in huey.pending() + huey.scheduled():
        if type(task).__name__ == task_name:
            found.add(tuple(task.args))
    return found


# The task modules must be imported whenever producer.huey is, so that huey_consumer knows them.
import workers.fireworks.tasks  # noqa: E402,F401
import workers.tasks  # noqa: E402,F401
