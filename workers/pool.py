"""The spawn-safe worker pool: N child processes, each running ``workers.loop.worker_loop``.

Why spawn: it is the only start method on Windows (Huey refuses process mode there, ARCHITECTURE
fact 2), and testing it on Linux keeps both paths equal. Children get only picklable arguments and
import ``producer`` themselves. The parent restarts a child that died, reconciles the ledger so its
claimed work is re-queued, and on stop asks children to finish the current request and exit.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from typing import Any

log = logging.getLogger("workers")

RESTART_BACKOFF_S = 1.0
STOP_GRACE_S = 60.0
RECONCILE_EVERY_S = 15.0


def ctrl_break_is_ctrl_c() -> None:
    """Windows: make Ctrl+Break (what a console or a parent process can send) stop the pool like Ctrl+C."""
    import signal

    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, signal.default_int_handler)


def _child_main(index: int, queue_dir: str, stop_event: Any, log_level: int) -> None:
    """Entry point of a child (module level: picklable under spawn)."""
    from producer.queue_paths import ENV_QUEUE_DIR

    os.environ[ENV_QUEUE_DIR] = queue_dir
    logging.basicConfig(level=log_level, format=f"%(asctime)s worker-{index} pid %(process)d %(message)s")
    from workers.loop import worker_loop

    worker_loop(stop_event)


class WorkerPool:
    def __init__(self, workers: int, log_level: int = logging.INFO) -> None:
        from producer.queue_paths import pin_queue_dir

        self.n = max(1, int(workers))
        self.queue_dir = str(pin_queue_dir())
        self.ctx = multiprocessing.get_context("spawn")
        self.stop_event = self.ctx.Event()
        self.children: dict[int, Any] = {}
        self.log_level = log_level
        self.restarts = 0
        self._last_reconcile = 0.0

    def _spawn(self, index: int) -> None:
        proc = self.ctx.Process(
            target=_child_main, args=(index, self.queue_dir, self.stop_event, self.log_level),
            name=f"excellence-worker-{index}", daemon=False,
        )
        proc.start()
        self.children[index] = proc

    def start(self) -> None:
        from producer.reconcile import reconcile

        reconcile()  # work of workers that died before this pool started
        for i in range(self.n):
            self._spawn(i)

    def supervise(self) -> None:
        """Restart dead children (then reconcile their work); reconcile now and then anyway."""
        from producer.reconcile import reconcile

        died = False
        for index, proc in list(self.children.items()):
            if not proc.is_alive() and not self.stop_event.is_set():
                proc.join(0)
                log.warning("worker-%s (pid %s) exited with %s: restarting", index, proc.pid, proc.exitcode)
                died = True
                self.restarts += 1
                time.sleep(RESTART_BACKOFF_S if self.restarts > self.n else 0)
                self._spawn(index)
        now = time.monotonic()
        if died or now - self._last_reconcile > RECONCILE_EVERY_S:
            self._last_reconcile = now
            try:
                reconcile()
            except Exception as exc:  # a busy database now and then must not end the pool
                log.warning("reconcile failed: %s", exc)

    def pids(self) -> list[int]:
        return [p.pid for p in self.children.values() if p.pid is not None]

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Cooperative: children finish the current request, give back the rest, and exit."""
        self.stop_event.set()
        deadline = time.monotonic() + grace_s
        for proc in self.children.values():
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.children.values():
            if proc.is_alive():
                log.warning("worker pid %s did not stop in time: terminating", proc.pid)
                proc.terminate()
                proc.join(5)

    def run_forever(self, poll_s: float = 1.0) -> None:
        self.start()
        try:
            while True:
                self.supervise()
                time.sleep(poll_s)
        except KeyboardInterrupt:
            log.info("stopping workers (Ctrl+C): current requests finish, the rest stays queued")
        finally:
            self.stop()
