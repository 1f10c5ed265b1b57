"""The spawn-safe worker pool: N child processes, each running ``workers.loop.worker_loop``.

Why spawn: it is the only start method on Windows (Huey refuses process mode there,
docs/architecture.md fact 2), and testing it on Linux keeps both paths equal. Children get only picklable arguments and
import ``producer`` themselves. The parent restarts a child that died, reconciles the ledger so its
claimed work is re-queued, and on stop asks children to finish the current request and exit.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import sys
import time
from typing import Any

from config.secrets import redact_logging
from producer.host.exit_codes import exit_words
from producer.host.queue_paths import ENV_QUEUE_DIR, pin_queue_dir
from workers.last_words import last_words

log = logging.getLogger("workers")

RESTART_BACKOFF_S = 1.0
STOP_GRACE_S = 60.0
RECONCILE_EVERY_S = 15.0
# The crash-loop breaker (docs/architecture.md, "Crash-loop breaker"): this many deaths within this many
# seconds and the pool restarts no one. A model load that aborts (a CUDA build the driver cannot run)
# kills each new worker within seconds; a worker lost now and then (a killed process) stays well below.
CRASH_LOOP_DEATHS = 5
CRASH_LOOP_WINDOW_S = 120.0


def ctrl_break_is_ctrl_c() -> None:
    """Stop requests from outside stop the pool like Ctrl+C (KeyboardInterrupt: children finish their
    current request, the rest stays queued, the resume hint is printed): SIGTERM (``kill PID``, a service
    manager) everywhere, SIGHUP (a closed terminal) on POSIX, and Ctrl+Break on Windows."""
    import signal

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, signal.default_int_handler)
    if hasattr(signal, "SIGHUP"):  # POSIX: a closed terminal stops the run gracefully, with the resume hint
        signal.signal(signal.SIGHUP, signal.default_int_handler)


class _KillOnCloseJob:
    """Windows: a Job Object with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE holding the pool's children.

    Why: the OS closes the job's only handle when the pool process ends, however it ends (kill, crash,
    closed console), and then ends every child with it: a GPU worker can never outlive its pool there.
    ctypes only (no pywin32). Elsewhere the children watch their parent (workers.parent_watch).
    """

    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
    JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS = 9
    PROCESS_SET_QUOTA = 0x0100
    PROCESS_TERMINATE = 0x0001

    def __init__(self) -> None:
        self.handle: Any = None
        if sys.platform != "win32":
            return
        import ctypes

        try:
            kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
            kernel32.CreateJobObjectW.restype = ctypes.c_void_p
            kernel32.OpenProcess.restype = ctypes.c_void_p
            handle = kernel32.CreateJobObjectW(None, None)
            if not handle:
                raise OSError(ctypes.get_last_error(), "CreateJobObjectW failed")
            info = job_limit_information(self.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE)
            if not kernel32.SetInformationJobObject(ctypes.c_void_p(handle),
                                                    self.JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
                                                    ctypes.byref(info), ctypes.sizeof(info)):
                raise OSError(ctypes.get_last_error(), "SetInformationJobObject failed")
            self.kernel32, self.handle = kernel32, handle
        except OSError as exc:  # the children still watch their parent
            log.warning("could not create a kill-on-close job for the workers: %s", exc)

    def add(self, pid: int | None) -> None:
        if self.handle is None or pid is None:
            return
        import ctypes

        proc = self.kernel32.OpenProcess(self.PROCESS_SET_QUOTA | self.PROCESS_TERMINATE, False, pid)
        if not proc:
            return
        try:
            if not self.kernel32.AssignProcessToJobObject(ctypes.c_void_p(self.handle), ctypes.c_void_p(proc)):
                log.warning("could not put worker pid %s in the kill-on-close job", pid)
        finally:
            self.kernel32.CloseHandle(ctypes.c_void_p(proc))


def job_limit_information(limit_flags: int) -> Any:
    """JOBOBJECT_EXTENDED_LIMIT_INFORMATION (winnt.h) with ``LimitFlags`` set: 144 bytes on 64-bit."""
    import ctypes

    class IoCounters(ctypes.Structure):
        _fields_ = [(name, ctypes.c_ulonglong) for name in (
            "ReadOperationCount", "WriteOperationCount", "OtherOperationCount",
            "ReadTransferCount", "WriteTransferCount", "OtherTransferCount")]

    class BasicLimitInformation(ctypes.Structure):
        _fields_ = [("PerProcessUserTimeLimit", ctypes.c_longlong), ("PerJobUserTimeLimit", ctypes.c_longlong),
                    ("LimitFlags", ctypes.c_uint32), ("MinimumWorkingSetSize", ctypes.c_size_t),
                    ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", ctypes.c_uint32),
                    ("Affinity", ctypes.c_size_t), ("PriorityClass", ctypes.c_uint32),
                    ("SchedulingClass", ctypes.c_uint32)]

    class ExtendedLimitInformation(ctypes.Structure):
        _fields_ = [("BasicLimitInformation", BasicLimitInformation), ("IoInfo", IoCounters),
                    ("ProcessMemoryLimit", ctypes.c_size_t), ("JobMemoryLimit", ctypes.c_size_t),
                    ("PeakProcessMemoryUsed", ctypes.c_size_t), ("PeakJobMemoryUsed", ctypes.c_size_t)]

    info = ExtendedLimitInformation()
    info.BasicLimitInformation.LimitFlags = limit_flags
    return info


def _child_main(index: int, queue_dir: str, stop_event: Any, log_level: int) -> None:
    """Entry point of a child (module level: picklable under spawn)."""
    os.environ[ENV_QUEUE_DIR] = queue_dir
    logging.basicConfig(level=log_level, format=f"%(asctime)s worker-{index} pid %(process)d %(message)s")
    redact_logging()  # no key in a log line, whoever echoed it
    from workers.loop import worker_loop  # lazy: loads in the child, after its queue folder is set

    worker_loop(stop_event)


class StopFlag:
    """The pool's stop request, shared with its children: one byte of shared memory, no lock.

    Why not ``multiprocessing.Event``: its internal lock is a semaphore shared by every process, and a
    child killed (kill -9) while it held it leaves it held for good: the pool then hangs in ``stop()``
    and every child hangs in ``is_set()``, including its parent watch. A plain byte cannot be left locked.
    """

    def __init__(self, ctx: Any) -> None:
        self._flag = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._flag.value = 1

    def is_set(self) -> bool:
        return bool(self._flag.value)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.is_set() and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.is_set()


class WorkerPool:
    def __init__(self, workers: int, log_level: int = logging.INFO) -> None:
        self.n = max(1, int(workers))
        self.queue_dir = str(pin_queue_dir())
        self.ctx = multiprocessing.get_context("spawn")
        self.stop_event = StopFlag(self.ctx)
        self.children: dict[int, Any] = {}
        self.log_level = log_level
        self.restarts = 0
        self.deaths: collections.deque[float] = collections.deque(maxlen=CRASH_LOOP_DEATHS)
        self.crash_loop: str | None = None  # why the breaker tripped: no more restarts
        self._last_reconcile = 0.0
        self._job = _KillOnCloseJob()  # Windows: the OS ends the children with the pool

    def _spawn(self, index: int) -> None:
        proc = self.ctx.Process(
            target=_child_main, args=(index, self.queue_dir, self.stop_event, self.log_level),
            name=f"excellence-worker-{index}", daemon=False,
        )
        proc.start()
        self._job.add(proc.pid)
        self.children[index] = proc

    def start(self) -> None:
        from workers.reconcile import reconcile  # lazy: opens the queue, once the run pinned its folder

        reconcile()  # work of workers that died before this pool started
        for i in range(self.n):
            self._spawn(i)

    def supervise(self) -> None:
        """Restart dead children (then reconcile their work); reconcile now and then anyway."""
        from workers.reconcile import reconcile  # lazy: opens the queue, once the run pinned its folder

        died = False
        for index, proc in list(self.children.items()):
            if not proc.is_alive() and not self.stop_event.is_set() and self.crash_loop is None:
                proc.join(0)
                died = True
                said = last_words(proc.pid)
                if self._trip(index, proc, said):
                    break
                log.warning("worker-%s (pid %s) exited with %s: restarting%s", index, proc.pid,
                            exit_words(proc.exitcode), f" (it said: {said})" if said else "")
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

    def _trip(self, index: int, proc: Any, said: str) -> bool:
        """Count a death; at CRASH_LOOP_DEATHS within CRASH_LOOP_WINDOW_S set ``crash_loop`` (the one line
        the run stops with) and restart no one. True when it tripped."""
        now = time.monotonic()
        self.deaths.append(now)
        if len(self.deaths) < CRASH_LOOP_DEATHS or now - self.deaths[0] > CRASH_LOOP_WINDOW_S:
            return False
        self.crash_loop = (f"workers died {CRASH_LOOP_DEATHS} times in {now - self.deaths[0]:.0f} s (last: worker-{index}, "
                           f"pid {proc.pid}, {exit_words(proc.exitcode)})"
                           + (f"; its last words: {said}" if said else "")
                           + "; find the cause with python -m producer doctor")
        log.error("crash loop: %s", self.crash_loop)
        return True

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
            if proc.is_alive():  # SIGTERM only asks (workers.loop); this one does not answer at all
                proc.kill()
                proc.join(5)

    def run_forever(self, poll_s: float = 1.0) -> bool:
        """Supervise until Ctrl+C / SIGTERM / Ctrl+Break; True when stopped that way (the caller says how
        to continue)."""
        self.start()
        try:
            while self.crash_loop is None:
                self.supervise()
                time.sleep(poll_s)
            return False
        except KeyboardInterrupt:
            log.info("stopping workers: current requests finish, the rest stays queued")
            return True
        finally:
            self.stop()
