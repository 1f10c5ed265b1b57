"""One worker process's loop over the Huey queue (the body of every ``python -m workers`` child).

Why our own loop instead of Huey's consumer: we need a clean stop between requests (Ctrl+C finishes
the current request and gives the rest back), idle draining of the ledger by the inference worker,
and no signal handling that assumes POSIX. Messages are executed with ``huey.execute`` so tasks run
exactly as they do under ``huey_consumer``, with the same tasks registered (the imports below, as in
``producer.huey_main``). Importing this module opens the queue: the pool's child imports it only after
it set its queue folder (``workers.pool._child_main``).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

import workers.batch.tasks  # noqa: F401 - registers the batch providers' tasks
import workers.reconcile  # noqa: F401 - registers the periodic reconcile
from producer.huey_app import huey
from producer.ledger import connect
from producer.ledger.writes import heartbeat_worker
from workers import parent_watch, worker_state
from workers.tasks import drain
from workers.worker_state import STOP

log = logging.getLogger("workers")

POLL_S = 0.2
SCHEDULE_EVERY_S = 0.5
LOCK_RETRY_S = 2.0


def _on_sigint(signum: int, frame: Any) -> None:
    STOP.set()


def worker_loop(stop_event: Any = None, max_idle_s: float | None = None) -> None:
    """Take and execute messages until ``stop_event`` (or Ctrl+C); ``max_idle_s`` ends an idle loop."""
    signal.signal(signal.SIGINT, _on_sigint)
    signal.signal(signal.SIGTERM, _on_sigint)  # a service manager's stop, or pool.stop()'s terminate
    if hasattr(signal, "SIGBREAK"):  # Windows: Ctrl+Break stops cleanly too
        signal.signal(signal.SIGBREAK, _on_sigint)
    if hasattr(signal, "SIGHUP"):  # POSIX: a closed terminal hangs up the whole group: finish, then stop
        signal.signal(signal.SIGHUP, _on_sigint)
    parent_watch.start(stop_event)  # a dead pool or its stop event ends even a long drain
    worker_state.ensure_registered()
    last_schedule = 0.0
    last_lock_try = 0.0
    idle_since = time.monotonic()
    try:
        while not STOP.is_set() and not (stop_event is not None and stop_event.is_set()):
            now = time.monotonic()
            if parent_watch.parent_gone():  # the pool died (kill -9): do not linger
                log.warning("pool process is gone: worker %s stops", os.getpid())
                break
            if now - last_schedule >= SCHEDULE_EVERY_S:
                last_schedule = now
                for task in huey.read_schedule():
                    huey.enqueue(task)
            task = huey.dequeue()
            if task is not None:
                huey.execute(task)
                idle_since = time.monotonic()
                continue
            holder = worker_state.model_lock().held
            if not holder and now - last_lock_try >= LOCK_RETRY_S:  # take over from a dead holder
                last_lock_try = now
                holder = worker_state.try_inference_role()
            if holder and drain():
                idle_since = time.monotonic()
                continue
            if max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                break
            if stop_event is not None:
                stop_event.wait(POLL_S)
            else:
                STOP.wait(POLL_S)
    finally:
        STOP.set()  # ends the heartbeat thread
        worker_state.close_engines()
        try:
            heartbeat_worker(connect(), os.getpid(), worker_state.role(), state="stopped")
        except Exception as exc:
            log.warning("could not record worker stop: %s", exc)
