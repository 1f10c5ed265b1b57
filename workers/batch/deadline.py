"""The poll deadline: a job not done ``<backend>.poll_deadline_s`` after its creation stops the run.

Why: a job can sit pending for ever (Fireworks' docs warn that some models have no batch support;
an OpenAI batch can wait for capacity) and a finished job's output can stay out of reach; polling
would then never end. Past the deadline the run stops (the ledger's stop flag, like ``producer stop``)
with the job id, its state and what to do, in the words of the run's own provider (its registry row:
``label``, ``console``). ``deadline_at`` in ``fireworks_parts`` holds the moment: NULL until the first
poll (creation time + deadline), 0 after a stop, so that a ``run --resume`` waits one more full window.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

from config.engines import BATCH_BACKENDS
from config.schema import EvalConfig
from producer.ledger import fireworks as fw_ledger
from producer.ledger.run_record import set_run_stop
from workers.batch_provider import BatchJob

log = logging.getLogger("workers.batch")

RESTART = 0.0  # deadline_at after a stop: the next poll starts a new window


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 360 else f"{seconds:.0f} s"


def stuck_reason(backend: str, run_id: str, part: Any, job: BatchJob, limit: float, deadline_at: float,
                 problem: str | None = None) -> str:
    """The one paragraph a stopped run shows: which job, how long, where to look, how to go on."""
    spec = BATCH_BACKENDS[backend]
    state = job.state.removeprefix("JOB_STATE_")
    what = f"is still {state}" if problem is None else f"is {state} but its results could not be downloaded ({problem})"
    age = time.time() - (job.created_at or deadline_at - limit)
    return (f"{spec.label} job {part['job_id']} (part {part['part']}, trial {part['trial']}) {what} {_hours(age)}"
            f" after it was created ({backend}.poll_deadline_s {_hours(limit)}). If it stays pending the model"
            f" may not support batch inference: check or cancel the job in {spec.console}, or run"
            f" `python -m producer stop --cancel-batches --run-id {run_id}`; `python -m producer run --resume"
            f" {run_id}` then waits {_hours(limit)} more (a cancelled job's rows fail and `--retry-failed` sends"
            " them again)")


def check_deadline(conn: sqlite3.Connection, run_id: str, part: sqlite3.Row, job: BatchJob, cfg: EvalConfig,
                   backend: str, problem: str | None = None) -> bool:
    """Record the part's deadline on its first poll; past it stop the run and return True."""
    limit = cfg.batch_settings().poll_deadline_s
    now = time.time()
    deadline_at = part["deadline_at"]
    if deadline_at is None or deadline_at == RESTART:
        start = now if deadline_at == RESTART else (job.created_at or now)
        deadline_at = start + limit
        fw_ledger.update_part(conn, run_id, part["part"], deadline_at=deadline_at)
    if now <= deadline_at:
        return False
    reason = stuck_reason(backend, run_id, part, job, limit, deadline_at, problem)
    fw_ledger.update_part(conn, run_id, part["part"], deadline_at=RESTART, error=reason[:500])
    set_run_stop(conn, run_id, True, reason=reason)
    log.error("run %s: %s", run_id, reason)
    return True
