"""A worker process notices within a second that its pool died, gives its work back and exits.

Why: a child that outlives a killed pool (kill -9 of ``python -m workers`` or ``huey_consumer``, a
closed console, a crash) keeps the model lock and the VRAM, claims new chunks and records results no
one supervises, so a new pool cannot take the GPU role. The parent is checked twice a second from a
thread (the main thread may be inside a long generation) and again right before each request and
each recorded result, so nothing is recorded once the parent is gone; the request in flight at that
moment is given back and sent again by the next pool (its result is still recorded only once).

The same thread mirrors the pool's stop event into ``STOP`` so a child draining a long queue stops
after its current request when the pool stops (``pool.stop()``, SIGTERM, Ctrl+C in another window).

The parent is the multiprocessing parent (our spawn pool, huey's forked workers). On POSIX a changed
``os.getppid()`` (re-parented to init) also counts: a forked sibling can hold the parent's sentinel
pipe open. On Windows the pool also puts its children in a Job Object that the OS closes with the
pool (``workers.pool``), so they end even if this thread never runs again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from typing import Any

from producer.ledger import connect
from producer.ledger.writes import release_worker
from workers.worker_state import STOP, in_flight

log = logging.getLogger("workers")

POLL_S = 0.5
GRACE_S = 4.0  # how long the request in flight may take to end (it is given back, not recorded)

_orphaned = threading.Event()
_watch: dict[str, Any] = {"pid": None}


def _parent_alive() -> bool:
    parent, ppid = _watch.get("parent"), _watch.get("ppid")
    if parent is not None and not parent.is_alive():
        return False
    return not (sys.platform != "win32" and ppid is not None and os.getppid() != ppid)


def parent_gone() -> bool:
    """True once this process's pool is gone (checked now, not only by the thread)."""
    if _orphaned.is_set():
        return True
    if _watch.get("pid") != os.getpid() or _watch.get("parent") is None:
        return False
    if not _parent_alive():
        _orphaned.set()
        STOP.set()
        return True
    return False


def start(stop_event: Any = None) -> None:
    """Start watching (once per process): the multiprocessing parent, and ``stop_event`` when given."""
    if _watch.get("pid") == os.getpid():
        return
    parent = multiprocessing.parent_process()
    # the parent as it was at our start: a pool that died before this call already counts as gone
    _watch.update(pid=os.getpid(), parent=parent, ppid=parent.pid if parent is not None else None)
    if parent is None and stop_event is None:
        return  # a process started by hand (or huey's thread workers): nothing to watch
    threading.Thread(target=_loop, args=(stop_event,), name="parent-watch", daemon=True).start()


def _loop(stop_event: Any) -> None:
    while True:
        if stop_event is not None and stop_event.is_set():
            STOP.set()
        if parent_gone():
            _leave()
            return
        time.sleep(POLL_S)


def _busy() -> bool:
    if in_flight():
        return True
    huey_mod = sys.modules.get("producer.huey_app")
    return bool(getattr(getattr(huey_mod, "huey", None), "_tasks_in_flight", None))


def hold_if_orphaned() -> None:
    """Called before each huey task (``producer.huey_app``): once the pool is gone, take nothing more.
    Why block rather than return: huey's loop would otherwise run every queued message as a no-op
    (and an orphan's chunk sent back would come round again at once) until this process exits; the
    watch thread gives the work back and ends the process within ``POLL_S`` + ``GRACE_S``."""
    if not parent_gone():
        return
    time.sleep(POLL_S + GRACE_S + 10.0)  # the watch thread ends the process meanwhile; if it never got there:
    _leave()


def _in_background(fn: Any, *args: Any, timeout: float | None = None) -> None:
    """Run ``fn`` on a daemon thread, waiting at most ``timeout`` seconds: a full or dead output pipe
    (the consumer's reader is gone) must not keep an orphan alive."""
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    if timeout:
        t.join(timeout)


def _leave() -> None:
    """Give back what this process claimed and exit, like a clean stop but without a parent to wait for."""
    pid = os.getpid()
    _in_background(log.warning, "worker pid %s: its pool process is gone; giving back its work and exiting", pid,
                   timeout=0.5)
    STOP.set()
    deadline = time.monotonic() + GRACE_S
    while _busy() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        release_worker(connect(), pid, refund=sorted(in_flight()))
    except Exception as exc:  # the next pool's reconcile gives it back anyway
        _in_background(log.warning, "worker pid %s could not give back its work: %s", pid, exc, timeout=1.0)
    _in_background(logging.shutdown, timeout=1.0)  # flush log files; never wait on a blocked stream
    os._exit(0)  # the OS releases the model lock and the VRAM
