"""At most ``max_concurrent_requests`` HTTP requests in flight across every worker process.

Why: Ollama runs ``OLLAMA_NUM_PARALLEL`` requests at once (default 1) and ``llama-server`` has
``--parallel N`` slots; sending more only queues them inside the server, where they time out and
distort latency figures. Several worker processes (``python -m workers -w N``) share one server, so
the limit must hold across processes, not only across a process's threads.

How: N slot files in the queue folder (``http_slot.<i>.lock``); holding a slot is holding an OS lock on
its file (``flock`` on POSIX, ``msvcrt.locking`` on Windows, through ``workers.model_lock.ModelLock``),
so a worker that dies releases its slot at once, with no stale state to clean. Raise the server's own
limit to match: ``OLLAMA_NUM_PARALLEL=4 ollama serve`` or ``llama-server --parallel 4`` (each slot gets
``n_ctx / parallel`` context in llama-server, so raise ``-c`` too). Requests are taken in the queue's
prefix-aware order (temperature -> condition -> item), so requests sharing a system prompt reach the
server together and its prompt cache stays warm.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workers.model_lock import ModelLock

SLOT_PREFIX = "http_slot"


class SlotTimeoutError(TimeoutError):
    """No slot became free in time."""


class RequestSlots:
    """A cross-process counting semaphore made of ``limit`` lock files in ``directory``."""

    def __init__(self, directory: Path, limit: int, poll_s: float = 0.02) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.directory = Path(directory)
        self.limit = limit
        self.poll_s = poll_s
        self.directory.mkdir(parents=True, exist_ok=True)

    def slot_path(self, index: int) -> Path:
        return self.directory / f"{SLOT_PREFIX}.{index}.lock"

    def try_acquire(self) -> ModelLock | None:
        """A held slot, or None when all ``limit`` slots are taken (starts at a random slot so
        waiting processes do not all hammer slot 0)."""
        start = random.randrange(self.limit)
        for k in range(self.limit):
            lock = ModelLock(self.slot_path((start + k) % self.limit))
            if lock.try_acquire():
                return lock
        return None

    def acquire(self, timeout_s: float | None = None) -> ModelLock:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        delay = self.poll_s
        while True:
            lock = self.try_acquire()
            if lock is not None:
                return lock
            if deadline is not None and time.monotonic() >= deadline:
                raise SlotTimeoutError(f"no free request slot of {self.limit} within {timeout_s:g} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    @staticmethod
    def release(lock: ModelLock) -> None:
        lock.release()

    @contextmanager
    def slot(self, timeout_s: float | None = None) -> Iterator[ModelLock]:
        lock = self.acquire(timeout_s)
        try:
            yield lock
        finally:
            lock.release()


_shared_lock = threading.Lock()
_shared: dict[tuple[str, int], RequestSlots] = {}


def shared_slots(limit: int, directory: Path | None = None) -> RequestSlots:
    """The process's slots for ``limit`` in ``directory`` (default: the queue folder)."""
    if directory is None:
        from producer.queue_paths import queue_dir

        directory = queue_dir()
    key = (str(Path(directory).resolve()), limit)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = RequestSlots(Path(directory), limit)
        return _shared[key]


class LimitedEngine:
    """Wraps an HTTP engine so every ``generate`` holds one of the shared slots.

    Usage in a worker: ``engine = LimitedEngine(create_engine(cfg, model), shared_slots(cfg.max_concurrent_requests))``.
    """

    def __init__(self, engine, slots: RequestSlots) -> None:  # noqa: ANN001 - any Engine
        self.inner = engine
        self.slots = slots
        self.name = engine.name
        self.thread_safe = engine.thread_safe

    def generate(self, messages, params):  # noqa: ANN001, ANN201 - the Engine protocol
        with self.slots.slot():
            return self.inner.generate(messages, params)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, item: str):  # noqa: ANN204 - facts(), tags()... of the wrapped engine
        return getattr(self.inner, item)
