"""The cross-process request limiter (real processes, spawn start method) and the engine-down window."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from pathlib import Path

import pytest

from workers.engines.concurrency import LimitedEngine, RequestSlots, SlotTimeoutError, shared_slots
from workers.engines.health import FailureWindow


def _hold_slot(directory: str, limit: int, log: str, hold_s: float) -> None:
    """Child: take a slot, note entry/exit times, let it go."""
    slots = RequestSlots(Path(directory), limit)
    with slots.slot(timeout_s=60):
        start = time.time()
        time.sleep(hold_s)
        end = time.time()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"{start} {end}\n")


def _hold_forever(directory: str, ready: str) -> None:
    slots = RequestSlots(Path(directory), 1)
    held = slots.acquire()  # keep the reference: a collected lock closes its file and frees the slot
    Path(ready).write_text("held", encoding="utf-8")
    time.sleep(600)
    slots.release(held)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    cur = best = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def test_processes_never_exceed_the_limit(tmp_path):
    ctx = mp.get_context("spawn")
    log = tmp_path / "log.txt"
    procs = [ctx.Process(target=_hold_slot, args=(str(tmp_path / "q"), 2, str(log), 0.4)) for _ in range(5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
        assert p.exitcode == 0
    intervals = [tuple(map(float, line.split())) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(intervals) == 5
    assert max_overlap(intervals) <= 2


def test_slot_of_a_killed_process_is_released(tmp_path):
    ctx = mp.get_context("spawn")
    ready = tmp_path / "ready"
    proc = ctx.Process(target=_hold_forever, args=(str(tmp_path / "q"), str(ready)))
    proc.start()
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert time.monotonic() < deadline and proc.is_alive()
            time.sleep(0.05)
        slots = RequestSlots(tmp_path / "q", 1)
        with pytest.raises(SlotTimeoutError):
            slots.acquire(timeout_s=0.3)
    finally:
        proc.kill()
        proc.join(30)
    with slots.slot(timeout_s=5):  # the OS released the dead holder's lock
        pass


def test_threads_in_one_process_share_the_limit(tmp_path):
    slots = RequestSlots(tmp_path, 2)
    a, b = slots.acquire(), slots.acquire()
    assert slots.try_acquire() is None
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(slots.acquire(timeout_s=5)))
    t.start()
    time.sleep(0.2)
    assert not got  # still waiting
    slots.release(a)
    t.join(5)
    assert got
    slots.release(b)
    slots.release(got[0])  # type: ignore[arg-type]


def test_limited_engine_holds_a_slot_per_request(tmp_path):
    class Probe:
        name, thread_safe = "probe", True

        def __init__(self) -> None:
            self.active = self.peak = 0
            self.lock = threading.Lock()

        def generate(self, messages, params):
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            time.sleep(0.1)
            with self.lock:
                self.active -= 1
            return "ok"

        def close(self) -> None:
            pass

        def facts(self) -> dict:
            return {"name": "probe"}

    probe = Probe()
    engine = LimitedEngine(probe, shared_slots(3, tmp_path))
    threads = [threading.Thread(target=engine.generate, args=([], None)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert probe.peak <= 3
    assert engine.facts() == {"name": "probe"} and engine.thread_safe and engine.name == "probe"
    assert shared_slots(3, tmp_path) is engine.slots


def test_failure_window_trips_only_when_most_recent_requests_fail():
    window = FailureWindow(size=5, threshold=0.8)  # trips at >= 4 failures among the last 5
    for _ in range(4):
        assert window.failure("cannot reach Ollama at http://127.0.0.1:11434: start it with `ollama serve`") is False
    assert not window.tripped  # the window is not full yet: never abort on the first requests
    assert window.success() is True  # 4 of the last 5 failed
    assert window.message() == ("engine down: 4 of the last 5 requests failed (last error: cannot reach Ollama at "
                                "http://127.0.0.1:11434: start it with `ollama serve`); stopping the run")
    assert window.success() is False  # 3 of the last 5
    window.reset()
    assert window.failures == 0 and not window.tripped


def test_failure_window_is_thread_safe():
    window = FailureWindow(size=100, threshold=0.5)
    threads = [threading.Thread(target=lambda: [window.record(i % 2 == 0) for i in range(50)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert window.failures == 50 and window.tripped


def test_failure_window_rejects_nonsense():
    with pytest.raises(ValueError):
        FailureWindow(size=0)
    with pytest.raises(ValueError):
        FailureWindow(threshold=0)
