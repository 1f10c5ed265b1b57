"""The Huey tasks. Thin: each one delegates to the module that does the work.

Messages carry only ids (run_id, chunk / trial); everything else is read from the ledger, so a
message that is executed twice, late, or for a finished chunk does nothing harmful.
"""

from __future__ import annotations

import logging

from huey import crontab

from producer.huey_app import huey
from producer.ledger import connect
from producer.ledger.queries import chunk_has_waiting_work, chunk_trials, inference_busy, trial_is_complete
from workers import worker_state

log = logging.getLogger("workers")

BOUNCE_DELAY_S = 1.0  # a non-inference process hands an inference message back after this delay


@huey.task()
def infer_chunk(run_id: str, chunk: int) -> None:
    """Run one chunk, in the process that holds the model lock; any other process hands it back."""
    from workers.inference import drain, process_chunk

    worker_state.ensure_registered()
    if not worker_state.try_inference_role():
        conn = connect()
        # Hand the message back only while it matters: the chunk still waits and the inference worker
        # is idle. A busy inference worker drains every queued chunk from the ledger anyway, so
        # bouncing thousands of messages would only load SQLite.
        if chunk_has_waiting_work(conn, run_id, chunk) and not inference_busy(conn):
            infer_chunk.schedule((run_id, chunk), delay=BOUNCE_DELAY_S)
        return
    process_chunk(run_id, chunk)
    drain()


@huey.task()
def score_chunk(run_id: str, chunk: int) -> None:
    from workers.scoring_task import score_chunk_rows

    worker_state.ensure_registered()
    score_chunk_rows(run_id, chunk)


@huey.task()
def export_trial(run_id: str, trial: str) -> None:
    from workers.export import export_trial_files

    worker_state.ensure_registered()
    export_trial_files(run_id, trial)


@huey.periodic_task(crontab(minute="*"))
def reconcile_every_minute() -> None:
    """Under ``huey_consumer``: pick up work of crashed workers (our pool's parent does this itself)."""
    from producer.reconcile import reconcile

    worker_state.ensure_registered()
    reconcile()


def after_chunk(run_id: str, chunk: int, trial: str) -> None:
    """Follow-up CPU work of a finished chunk: score it; export its trial when nothing is open."""
    score_chunk(run_id, chunk)
    conn = connect()
    trials = {trial} | set(chunk_trials(conn, run_id, chunk))  # shared requests of other trials ride in it
    for t in sorted(trials):
        if trial_is_complete(conn, run_id, t):
            export_trial(run_id, t)
