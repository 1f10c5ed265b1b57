"""Huey tasks of a batch provider's run (Fireworks, OpenAI, ...): submit a part, poll its job (re-scheduling itself), ingest.

Why scheduled polling: a job takes minutes to hours; ``fw_poll_part.schedule(delay=...)`` frees the
worker between polls and survives a restart (the schedule lives in Huey's SQLite). Messages carry only
(run_id, part); the ledger's ``fireworks_parts`` table says what exists, so a message run twice, late,
or after a crash repeats no paid work. ``reconcile_fireworks`` re-sends the messages a crash lost
(``workers.reconcile`` calls it).
"""

from __future__ import annotations

import logging
import time

from config.engines import BATCH_BACKENDS, batch_backend_of, is_dry_run_engine
from producer.huey_app import enqueue_many, huey, queued_task_args
from producer.inputs.fireworks_plan import RowValidationError, save_job_table
from producer.ledger import connect
from producer.ledger import fireworks as fw_ledger
from producer.ledger.queries import chunk_trials, is_stopped, trial_is_complete
from producer.ledger.run_record import run_settings, set_run_stop
from workers import tasks, worker_state
from workers.fireworks.client import BatchServiceError

log = logging.getLogger("workers.fireworks")

DRY_RUN_POLL_S = 0.01


def _settings(run_id: str):
    return run_settings(run_id)


def _retryable(exc: BatchServiceError) -> bool:
    return exc.status is None or exc.status in (408, 429) or exc.status >= 500


def _fail_part(run_id: str, part: int, message: str) -> None:
    from workers.batch.runner import _fail_open  # lazy: keeps the task modules light to import

    conn = connect()
    row = fw_ledger.get_part(conn, run_id, part)
    if row is None:
        return
    _fail_open(conn, run_id, row, message)
    fw_ledger.update_part(conn, run_id, part, state="failed", error=message[:500])
    after_part(run_id, part)


def _stop_for_key(run_id: str, part: int, exc: BatchServiceError, engine: str) -> None:
    backend = batch_backend_of(engine) or "fireworks"
    spec = BATCH_BACKENDS[backend]
    names = " and ".join(n for n in (spec.key_env, spec.account_env) if n)
    reason = (f"{backend} refused the request while polling part {part} ({exc}): check {names},"
              f" then python -m producer run --resume {run_id}")
    set_run_stop(connect(), run_id, True, reason=reason[:600])
    log.error("run %s: %s", run_id, reason)


def after_part(run_id: str, part: int) -> None:
    """Score the part's results and export every trial that no longer has open requests."""
    save_job_table(run_id)
    conn = connect()
    tasks.score_chunk(run_id, part)
    for trial in chunk_trials(conn, run_id, part):
        if trial_is_complete(conn, run_id, trial):
            tasks.export_trial(run_id, trial)


def fw_submit_part(run_id: str, part: int) -> None:
    from workers.batch.runner import poll_part, submit_part  # lazy: as above
    from workers.batch_provider import provider_for  # lazy: keeps the task modules light to import

    worker_state.ensure_registered()
    if is_stopped(connect(), run_id):
        return
    cfg, engine = _settings(run_id)
    try:
        provider = provider_for(cfg, engine)
        state = submit_part(run_id, part, cfg, provider)
        if state != "submitted":
            return
        if is_dry_run_engine(engine):  # offline fake lives in this process: finish the part here
            while not poll_part(run_id, part, cfg, provider):
                if is_stopped(connect(), run_id):  # e.g. the poll deadline passed
                    return
                time.sleep(DRY_RUN_POLL_S)
            after_part(run_id, part)
            return
    except RowValidationError as exc:
        _fail_part(run_id, part, f"invalid batch row: {exc}")
        return
    except BatchServiceError as exc:
        if _retryable(exc):
            log.warning("part %s: %s; trying again later", part, exc)
            fw_submit_part.schedule((run_id, part), delay=cfg.batch_settings().poll_interval_s)
        else:
            _fail_part(run_id, part, str(exc))
        return
    fw_poll_part.schedule((run_id, part), delay=cfg.batch_settings().poll_interval_s)


def fw_poll_part(run_id: str, part: int) -> None:
    from workers.batch.runner import poll_part  # lazy: as above
    from workers.batch_provider import provider_for  # lazy: keeps the task modules light to import

    worker_state.ensure_registered()
    if is_stopped(connect(), run_id):
        return  # resume re-schedules the poll
    cfg, engine = _settings(run_id)
    try:
        finished = poll_part(run_id, part, cfg, provider_for(cfg, engine))
    except BatchServiceError as exc:
        if exc.status == 404 and is_dry_run_engine(engine):  # the offline fake died with its process
            fw_ledger.update_part(connect(), run_id, part, state="planned")
            fw_submit_part(run_id, part)
            return
        if exc.status in (401, 403):  # a key problem says nothing about the job: never fail its rows
            _stop_for_key(run_id, part, exc, engine)
            return
        if not _retryable(exc):
            _fail_part(run_id, part, str(exc))
            return
        log.warning("part %s: poll failed (%s); polling again later", part, exc)
        finished = False
    if finished:
        after_part(run_id, part)
    elif not is_stopped(connect(), run_id):  # a stop (the poll deadline, producer stop): resume re-sends
        fw_poll_part.schedule((run_id, part), delay=cfg.batch_settings().poll_interval_s)


# Huey names a task "<module of its function>.<name>" and queued messages carry that name: these were
# defined in workers.fireworks.tasks, so they keep it (messages in a user's queue still run).
fw_submit_part.__module__ = fw_poll_part.__module__ = "workers.fireworks.tasks"
fw_submit_part = huey.task()(fw_submit_part)
fw_poll_part = huey.task()(fw_poll_part)


def reconcile_fireworks(run_id: str | None = None) -> int:
    """Re-send lost messages: planned parts get a submit, submitted parts a poll. Returns messages sent."""
    rows = fw_ledger.open_parts(connect(), run_id)
    if not rows:
        return 0
    have_submit = queued_task_args("fw_submit_part")
    have_poll = queued_task_args("fw_poll_part")
    msgs = []
    for r in rows:
        key = (r["run_id"], r["part"])
        if r["state"] == "planned" and key not in have_submit:
            msgs.append(fw_submit_part.s(*key))
        elif r["state"] == "submitted" and key not in have_poll:
            msgs.append(fw_poll_part.s(*key))
    return enqueue_many(msgs)
