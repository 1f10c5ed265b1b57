"""The engine-down detector (a sliding window over the last request outcomes), used by the
inference worker to stop a run whose engine died (see test_engine_down.py for the whole flow)."""

from __future__ import annotations

import threading

import pytest

from workers.engines.health import FailureWindow

pytestmark = pytest.mark.unit


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
