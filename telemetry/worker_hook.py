"""The GPU worker's telemetry, in one context manager around a chunk of inference.

Why: the worker should not know about NVML, psutil or the samples table. ``chunk_telemetry`` starts a
sampler (when ``enable_local_telemetry`` is on and the backend is local), tags its samples with the run
and trial, and yields a ``note(result)`` callback for each finished request; on exit it stops the
thread and flushes. NVML is opened once per process and kept (opening it per chunk can take 100 ms).

Two ways to use it from workers/inference.py:

    note_result(cfg, run_id, trial, result)      # one line after each recorded result; the sampler
                                                 # starts on the first, retags on a trial switch and
                                                 # stops by itself after IDLE_STOP_S without requests
    with chunk_telemetry(cfg, run_id, trial) as note:   # or explicitly around a chunk
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

from producer.host.queue_paths import ledger_path
from telemetry.nvml import GpuReader
from telemetry.sampler import TelemetrySampler
from telemetry.store import TelemetryStore

INTERVAL_S = float(os.environ.get("EXCELLENCE_TELEMETRY_INTERVAL_S", "0.25"))
IDLE_STOP_S = 30.0

_lock = threading.Lock()
_reader: GpuReader | None = None
_stores: dict[Path, TelemetryStore] = {}
_active: dict[str, Any] = {"key": None, "sampler": None}


def _shared_reader_unlocked() -> GpuReader:
    global _reader
    if _reader is None:
        _reader = GpuReader()
    return _reader


def _store_unlocked(path: Path) -> TelemetryStore:
    if path not in _stores:
        _stores[path] = TelemetryStore(path)
    return _stores[path]


def _shared_reader() -> GpuReader:
    with _lock:
        return _shared_reader_unlocked()


def _store(path: Path) -> TelemetryStore:
    with _lock:
        return _store_unlocked(path)


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


def _enabled(cfg: Any) -> bool:
    return bool(getattr(cfg, "enable_local_telemetry", False)) and getattr(cfg, "backend", "local") == "local"


def note_result(cfg: Any, run_id: str, trial: str, result: Any, ledger: Path | None = None,
                interval_s: float | None = None, idle_stop_s: float = IDLE_STOP_S) -> None:
    """Count one finished request in this process's sampler (started, or retagged, as needed)."""
    if not _enabled(cfg):
        return
    try:
        if ledger is None:
            ledger = ledger_path()
        key = (str(ledger), run_id, trial)
        with _lock:
            sampler = _active["sampler"]
            if sampler is not None and (_active["key"] != key or not sampler.running):
                sampler.stop()
                sampler = None
            if sampler is None:
                store = _store_unlocked(Path(ledger))
                sampler = TelemetrySampler(interval_s=interval_s or INTERVAL_S, pids=[os.getpid()],
                                           sink=store.sink(run_id, trial, os.getpid()),
                                           nvml=_shared_reader_unlocked(), own_nvml=False, idle_stop_s=idle_stop_s)
                sampler.start()
                _active.update(key=key, sampler=sampler)
        usage = getattr(result, "usage", None)
        sampler.note_request(getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
    except Exception:  # telemetry must never stop inference
        return


def flush_active() -> None:
    """Write this process's buffered samples now (the export step calls this before reading them)."""
    with _lock:
        sampler = _active["sampler"]
    if sampler is not None:
        sampler.flush()


def stop_active() -> None:
    """Stop and flush this process's sampler (also run at exit)."""
    with _lock:
        sampler, _active["sampler"], _active["key"] = _active["sampler"], None, None
    if sampler is not None:
        sampler.stop()


def _at_exit() -> None:
    stop_active()  # last sample and flush first, then release NVML
    if _reader is not None:
        _reader.close()


atexit.register(_at_exit)
