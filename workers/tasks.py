"""The Huey tasks. Thin: each one delegates to the module that does the work.

Messages carry only ids (run_id, chunk / trial); everything else is read from the ledger, so a
message that is executed twice, late, or for a finished chunk does nothing harmful. Huey names a task
``<module>.<function>`` and that name is in queued messages: ``workers.tasks.infer_chunk`` etc. stay
here (tests/test_task_names.py). Every process that runs tasks imports this module, so the hooks that
end a worker with its parent are registered here too.
"""

from __future__ import annotations

import logging
import time

from huey.api import Task

from producer.huey_app import huey
from producer.ledger import connect
from producer.ledger.queries import (
    chunk_has_waiting_work,
    chunk_trials,
    inference_busy,
    trial_is_complete,
)
from producer.ledger.writes import next_queued_chunk
from workers import parent_watch, worker_state
from workers.parent_watch import parent_gone
from workers.worker_state import STOP

log = logging.getLogger("workers")

DRAIN_BUDGET_S: float | None = None  # None: drain until no chunk is queued (other processes score/export)
BOUNCE_DELAY_S = 1.0  # a non-inference process hands an inference message back after this delay


@huey.on_startup()
def _watch_parent() -> None:
    """Under ``huey_consumer -k process``: a worker (and the scheduler: producer.huey_app) exits when
    the consumer dies (kill -9) instead of running on with the model lock and the VRAM (once per process)."""
    parent_watch.start()


@huey.pre_execute()
def _orphans_take_nothing(task: Task) -> None:
    """A worker whose consumer or pool died takes no more tasks: it would run through the whole queue
    as no-ops before it exits (``workers.parent_watch.hold_if_orphaned`` blocks until it has)."""
    parent_watch.hold_if_orphaned()


@huey.task()
def infer_chunk(run_id: str, chunk: int) -> None:
    """Run one chunk, in the process that holds the model lock; any other process hands it back."""
    worker_state.ensure_registered()
    if not worker_state.try_inference_role():
        conn = connect()
        # Hand the message back only while it matters: the chunk still waits and the inference worker
        # is idle. A busy inference worker drains every queued chunk from the ledger anyway, so
        # bouncing thousands of messages would only load SQLite.
        if chunk_has_waiting_work(conn, run_id, chunk) and not inference_busy(conn):
            infer_chunk.schedule((run_id, chunk), delay=BOUNCE_DELAY_S)
        return
    run_chunk(run_id, chunk)
    drain()


def run_chunk(run_id: str, chunk: int) -> dict:
    """Run one chunk (workers.inference; with the batched engine also the run's next queued chunks),
    then send their messages: a chunk again for requests that went back to the queue, and the scoring
    and export of each chunk run."""
    from workers.inference import process_chunk  # lazy: keeps the task modules light to import

    # after_chunk for each chunk it ran: the batched engine also runs the next queued chunks
    return process_chunk(run_id, chunk, requeue=infer_chunk, finished=after_chunk)


def drain(budget_s: float | None = DRAIN_BUDGET_S) -> int:
    """Run queued chunks straight from the ledger (oldest first) until none is left (or ``budget_s``)."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    ran = 0
    conn = connect()
    while not STOP.is_set() and not parent_gone() and (deadline is None or time.monotonic() < deadline):
        nxt = next_queued_chunk(conn)
        if nxt is None:
            break
        if not run_chunk(*nxt)["claimed"]:
            break
        ran += 1
    return ran


@huey.task()
def score_chunk(run_id: str, chunk: int) -> None:
    from workers.scoring_task import score_chunk_rows  # lazy: keeps the task modules light to import

    worker_state.ensure_registered()
    score_chunk_rows(run_id, chunk)


@huey.task()
def export_trial(run_id: str, trial: str) -> None:
    from workers.export import export_trial_files  # lazy: keeps the task modules light to import

    worker_state.ensure_registered()
    export_trial_files(run_id, trial)


def after_chunk(run_id: str, chunk: int, trial: str) -> None:
    """Follow-up CPU work of a finished chunk: score it; export its trial when nothing is open."""
    score_chunk(run_id, chunk)
    conn = connect()
    trials = {trial} | set(chunk_trials(conn, run_id, chunk))  # shared requests of other trials ride in it
    for t in sorted(trials):
        if trial_is_complete(conn, run_id, t):
            export_trial(run_id, t)
