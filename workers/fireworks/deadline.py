"""The poll deadline: a job that is not done ``fireworks.poll_deadline_s`` after its creation stops the run.

Why: a job can sit in PENDING for ever (Fireworks' docs warn that some models have no batch
support) and a COMPLETED job's output can stay out of reach; polling would then never end. Past the
deadline the run stops (the ledger's stop flag, like ``producer stop``) with the job id, its state and
what to do. ``deadline_at`` in ``fireworks_parts`` holds the moment: NULL until the first poll
(creation time + deadline), 0 after a stop, so that a ``run --resume`` waits one more full window.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from datetime import datetime
from typing import Any

from config.schema import EvalConfig
from producer.ledger import fireworks as fw_ledger
from producer.ledger.run_record import set_run_stop

log = logging.getLogger("workers.fireworks")

RESTART = 0.0  # deadline_at after a stop: the next poll starts a new window


def created_at(job: dict[str, Any]) -> float | None:
    """``createTime`` (RFC 3339, e.g. 2023-11-07T05:31:56.123456789Z) or OpenAI's ``created_at`` as a Unix
    time; None if absent."""
    if isinstance(job.get("created_at"), int | float):  # OpenAI: Unix seconds
        return float(job["created_at"])
    raw = str(job.get("createTime") or "").strip()
    if not raw:
        return None
    raw = re.sub(r"(\.\d{6})\d+", r"\1", raw).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return None


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 360 else f"{seconds:.0f} s"


def check_deadline(conn: sqlite3.Connection, run_id: str, part: sqlite3.Row, job: dict[str, Any],
                   cfg: EvalConfig, problem: str | None = None) -> bool:
    """Record the part's deadline on its first poll; past it stop the run and return True."""
    limit = cfg.batch_settings().poll_deadline_s
    now = time.time()
    deadline_at = part["deadline_at"]
    if deadline_at is None or deadline_at == RESTART:
        start = now if deadline_at == RESTART else (created_at(job) or now)
        deadline_at = start + limit
        fw_ledger.update_part(conn, run_id, part["part"], deadline_at=deadline_at)
    if now <= deadline_at:
        return False
    state = str(job.get("state") or "JOB_STATE_UNSPECIFIED").replace("JOB_STATE_", "")
    what = f"is still {state}" if problem is None else f"is {state} but its results could not be downloaded ({problem})"
    age = now - (created_at(job) or deadline_at - limit)
    reason = (f"Fireworks job {part['job_id']} (part {part['part']}, trial {part['trial']}) {what} {_hours(age)} after"
              f" it was created (fireworks.poll_deadline_s {_hours(limit)}). If it stays PENDING the model may not"
              " support batch inference: check or cancel the job in the Fireworks console"
              " (app.fireworks.ai, Batch Inference); `python -m producer run --resume"
              f" {run_id}` then waits {_hours(limit)} more (a cancelled job's rows fail and `--retry-failed` sends"
              " them again)")
    fw_ledger.update_part(conn, run_id, part["part"], deadline_at=RESTART, error=reason[:500])
    set_run_stop(conn, run_id, True, reason=reason)
    log.error("run %s: %s", run_id, reason)
    return True
