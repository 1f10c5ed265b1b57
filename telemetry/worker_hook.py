"""The GPU worker's telemetry, in one context manager around a chunk of inference.

Why: the worker should not know about NVML, psutil or the samples table. ``chunk_telemetry`` starts a
sampler (when ``enable_local_telemetry`` is on and the backend is local), tags its samples with the run
and trial, and yields a ``note(result)`` callback for each finished request; on exit it stops the
thread and flushes. NVML is opened once per process and kept (opening it per chunk can take 100 ms).

Usage in workers/inference.py::

    with chunk_telemetry(cfg, run_id, trial) as note:
        ... result = engine.generate(...); note(result) ...
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from telemetry.nvml import GpuReader
from telemetry.sampler import TelemetrySampler
from telemetry.store import TelemetryStore

INTERVAL_S = float(os.environ.get("EXCELLENCE_TELEMETRY_INTERVAL_S", "0.25"))

_lock = threading.Lock()
_reader: GpuReader | None = None
_stores: dict[Path, TelemetryStore] = {}


def _shared_reader() -> GpuReader:
    global _reader
    with _lock:
        if _reader is None:
            _reader = GpuReader()
            atexit.register(_reader.close)
        return _reader


def _store(path: Path) -> TelemetryStore:
    with _lock:
        if path not in _stores:
            _stores[path] = TelemetryStore(path)
        return _stores[path]


def _noop(result: Any) -> None:
    return None


@contextmanager
def chunk_telemetry(cfg: Any, run_id: str, trial: str, ledger: Path | None = None,
                    interval_s: float | None = None) -> Iterator[Callable[[Any], None]]:
    """Sample while the block runs; yields ``note(EngineResult)``. Never raises from telemetry."""
    if not getattr(cfg, "enable_local_telemetry", False) or getattr(cfg, "backend", "local") != "local":
        yield _noop
        return
    try:
        if ledger is None:
            from producer.queue_paths import ledger_path

            ledger = ledger_path()
        store = _store(Path(ledger))
        sampler = TelemetrySampler(interval_s=interval_s or INTERVAL_S, pids=[os.getpid()],
                                   sink=store.sink(run_id, trial, os.getpid()), nvml=_shared_reader(),
                                   own_nvml=False)
        sampler.start()
    except Exception:  # telemetry must never stop inference
        yield _noop
        return

    def note(result: Any) -> None:
        usage = getattr(result, "usage", None)
        sampler.note_request(getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))

    try:
        yield note
    finally:
        sampler.stop()
