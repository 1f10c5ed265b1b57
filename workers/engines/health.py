"""An "engine down" detector: most of the last N requests failed.

Why: when Ollama or llama-server dies mid-run, every remaining request would fail after its retries
and fill the ledger with failures for hours. The queue records each finished request here and aborts
early with one clear line once the window is mostly failures.
"""

from __future__ import annotations

import threading
from collections import deque


class FailureWindow:
    """Sliding window over the last ``size`` outcomes; ``tripped`` when failures reach ``threshold``.

    Thread-safe (HTTP engines run requests on several threads). Not tripped until the window is full,
    so a single early failure never aborts a run.
    """

    def __init__(self, size: int = 20, threshold: float = 0.8) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.size = size
        self.threshold = threshold
        self._outcomes: deque[bool] = deque(maxlen=size)
        self._last_error: str | None = None
        self._lock = threading.Lock()

    def record(self, ok: bool, error: str | None = None) -> bool:
        """Add one outcome; returns ``tripped`` after it."""
        with self._lock:
            self._outcomes.append(bool(ok))
            if not ok and error:
                self._last_error = " ".join(str(error).split())
            return self._tripped()

    def success(self) -> bool:
        return self.record(True)

    def failure(self, error: str | None = None) -> bool:
        return self.record(False, error)

    def _tripped(self) -> bool:
        if len(self._outcomes) < self.size:
            return False
        failures = sum(1 for ok in self._outcomes if not ok)
        return failures >= self.threshold * self.size

    @property
    def tripped(self) -> bool:
        with self._lock:
            return self._tripped()

    @property
    def failures(self) -> int:
        with self._lock:
            return sum(1 for ok in self._outcomes if not ok)

    def message(self) -> str:
        """One line for the user: what happened and the last error seen."""
        with self._lock:
            failures = sum(1 for ok in self._outcomes if not ok)
            total = len(self._outcomes)
            last = self._last_error or "unknown error"
        return f"engine down: {failures} of the last {total} requests failed (last error: {last}); stopping the run"

    def reset(self) -> None:
        with self._lock:
            self._outcomes.clear()
            self._last_error = None
