"""An "engine down" detector: most of the last N requests failed, or the server stopped answering.

Why: when Ollama or llama-server dies mid-run, every remaining request would fail after its retries
and fill the ledger with failures for hours. The queue records each finished request here and aborts
early with one clear line once the window is mostly failures. The request ids of those failures are
kept, so the stop can put them back to pending (an outage is not the request's fault).

A hung server (it accepts the request and never answers) is slower to see: each attempt waits the
whole ``request_timeout_s`` (600 s by default), and 16 failed requests x 4 attempts would take ten
hours. So timeouts are counted per attempt: ``MAX_TIMEOUTS`` in a row with no answer between them (plus
one per further request in flight: those time out together), or
one timeout after which the server does not even answer a plain ``GET`` (``answers_at_all``), stop the
run (about 10-20 minutes with the defaults).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MAX_TIMEOUTS = 2  # timed-out attempts in a row (no answer between them) that mean "the server hangs"
PROBE_TIMEOUT_S = 10.0


def answers_at_all(base_url: str | None, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when the server sends any HTTP answer to ``GET base_url/`` (even a 404): it is alive and only
    the generation was slow. False when it does not answer within ``timeout_s`` or refuses."""
    if not base_url:
        return True
    import requests

    try:
        with requests.get(f"{base_url.rstrip('/')}/", timeout=timeout_s, stream=True):
            return True
    except requests.RequestException:
        return False


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
        self._ids: deque[int | None] = deque(maxlen=size)  # request id of each outcome (failures only)
        self._last_error: str | None = None
        self._timeouts = 0
        self._lock = threading.Lock()

    def record(self, ok: bool, error: str | None = None, request_id: int | None = None) -> bool:
        """Add one outcome; returns ``tripped`` after it."""
        with self._lock:
            self._outcomes.append(bool(ok))
            self._ids.append(None if ok else request_id)
            if ok:
                self._timeouts = 0
            if not ok and error:
                self._last_error = " ".join(str(error).split())
            return self._tripped()

    def success(self) -> bool:
        return self.record(True)

    def failure(self, error: str | None = None, request_id: int | None = None) -> bool:
        """A request failed for good; ``request_id`` when an outage may have caused it (transient errors)."""
        return self.record(False, error, request_id)

    def failed_ids(self) -> list[int]:
        """Ids of the requests behind the failures now in the window (given back when the run stops)."""
        with self._lock:
            return [i for i in self._ids if i is not None]

    def timeout(self, error: str, concurrent: int = 1) -> bool:
        """One attempt got no answer in time; True when ``MAX_TIMEOUTS`` rounds did so in a row
        (``concurrent`` requests in flight time out together when the server hangs: one round)."""
        with self._lock:
            self._timeouts += 1
            self._last_error = " ".join(str(error).split())
            return self._timeouts >= MAX_TIMEOUTS + max(1, concurrent) - 1

    def hung_message(self, probe_failed: bool = False) -> str:
        """One line for a server that stopped answering (and what to change if it is only slow)."""
        with self._lock:
            n, last = self._timeouts, self._last_error or "no answer"
        what = ("and the server does not answer at all" if probe_failed
                else f"{n} attempts in a row got no answer")
        return (f"engine down: {last}, {what}; stopping the run (if the server is only slow, raise "
                f"request_timeout_s)")

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
            self._ids.clear()
            self._last_error = None
            self._timeouts = 0


def wait_until_answering(base_url: str | None, wait_s: float, stopping: Callable[[], bool],
                         poll_s: float = 1.0) -> bool:
    """A refused connection: poll the server until it answers again (True), ``wait_s`` passes or the run
    stops (False). Why: a restart of Ollama or llama-server takes seconds; the requests sent meanwhile
    must not spend their attempts and fail for good (issue 30, item 1)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if answers_at_all(base_url, timeout_s=min(PROBE_TIMEOUT_S, poll_s * 5)):
            return True
        if stopping():
            return False
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
    return answers_at_all(base_url, timeout_s=poll_s)
