"""Reconcile the ledger with the queue (docs/architecture.md fact 3): nothing lost, nothing run twice.

Runs at ``enqueue``, ``run``/``--resume`` (the command line passes ``reconcile_run`` to
``producer.planning.enqueue``), pool start-up, after a crashed child and every minute under ``huey_consumer``.
Work held by dead workers goes back to ``queued``; every open chunk without a message gets one;
finished chunks and trials get their scoring and export messages.

Why on the workers' side: it sends task messages, so it imports the task modules; the task modules
import only the Huey instance (``producer.huey_app``), so nothing imports back and there is no cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from huey import crontab

from producer.huey_app import enqueue_many, huey, queued_task_args
from producer.ledger import connect
from producer.ledger.queries import (
    live_worker_pids,
    open_chunks,
    orphaned_workers,
    trials_ready_to_export,
    unscored_chunks,
)
from producer.ledger.writes import mark_chunks_queued, reset_dead_work
from workers import tasks, worker_state
from workers.batch.tasks import reconcile_fireworks


@dataclass
class ReconcileReport:
    """What one reconcile did: requests given back by dead workers, and the messages it sent."""

    reset: int = 0
    enqueued: int = 0
    exports: int = 0
    scores: int = 0


def reconcile(run_id: str | None = None) -> ReconcileReport:
    """Bring the queue in line with the ledger for ``run_id`` (every run when None)."""
    conn = connect()
    report = ReconcileReport()
    live = live_worker_pids(conn)
    report.reset = reset_dead_work(conn, live, orphaned_workers(conn, live))

    in_queue = queued_task_args("infer_chunk")
    chunks = open_chunks(conn, run_id)
    missing = [(r, c) for r, c in chunks if (r, c) not in in_queue]
    report.enqueued = enqueue_many(tasks.infer_chunk.s(r, c) for r, c in missing)
    by_run: dict[str, list[int]] = {}
    for r, c in chunks:
        by_run.setdefault(r, []).append(c)
    for r, cs in by_run.items():
        mark_chunks_queued(conn, r, cs)

    in_queue = queued_task_args("score_chunk")
    report.scores = enqueue_many(
        tasks.score_chunk.s(r, c) for r, c in unscored_chunks(conn, run_id) if (r, c) not in in_queue
    )
    in_queue = queued_task_args("export_trial")
    report.exports = enqueue_many(
        tasks.export_trial.s(r, t) for r, t in trials_ready_to_export(conn, run_id) if (r, t) not in in_queue
    )
    report.enqueued += reconcile_fireworks(run_id)
    return report


def reconcile_run(run_id: str) -> int:
    """Reconcile one run (``enqueue``, ``run``, ``run --resume``): the inference messages it sent."""
    return reconcile(run_id).enqueued


def reconcile_every_minute() -> None:
    """Under ``huey_consumer``: pick up work of crashed workers (our pool's parent does this itself)."""
    worker_state.ensure_registered()
    reconcile()


# Huey names a task "<module of its function>.<name>", and queued messages carry that name: this task
# was defined in workers.tasks, so it keeps the name workers.tasks.reconcile_every_minute
# (tests/test_task_names.py). It lives here because it calls reconcile, which imports workers.tasks.
reconcile_every_minute.__module__ = "workers.tasks"
reconcile_every_minute = huey.periodic_task(crontab(minute="*"))(reconcile_every_minute)
