"""Per-process worker state: identity and heartbeat, the inference role, the engine cache, stop.

Why one module: under ``huey_consumer -k process`` and under our spawn pool alike, each process
learns lazily (on its first task) who it is; the same code then runs everywhere.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from config.schema import EvalConfig
from producer.host.queue_paths import model_lock_path
from producer.ledger import connect
from producer.ledger.queries import HEARTBEAT_S
from producer.ledger.writes import heartbeat_worker, record_model_load
from workers.engines.base import Engine
from workers.model_lock import ModelLock

log = logging.getLogger("workers")

STOP = threading.Event()  # set on Ctrl+C / pool shutdown: finish the current request, give back the rest

_state_lock = threading.Lock()
_in_flight: set[int] = set()  # ids of the requests this process is sending or recording now
_in_flight_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None}


def _reset_if_forked() -> None:
    if _state.get("pid") != os.getpid():
        _state.clear()
        _state.update(pid=os.getpid(), lock=ModelLock(model_lock_path()), engines={}, role="cpu",
                      heartbeat=None)


def model_lock() -> ModelLock:
    with _state_lock:
        _reset_if_forked()
        return _state["lock"]


def role() -> str:
    return "inference" if model_lock().held else "cpu"


def ensure_registered() -> None:
    """Register this process in the ledger and start its heartbeat thread (once per process)."""
    with _state_lock:
        _reset_if_forked()
        if _state["heartbeat"] is not None:
            return
        thread = threading.Thread(target=_heartbeat_loop, name="ledger-heartbeat", daemon=True)
        _state["heartbeat"] = thread
    heartbeat_worker(connect(), os.getpid(), role(), parent=os.getppid())  # whose tree this worker is in
    thread.start()


def _heartbeat_loop() -> None:
    pid = os.getpid()
    while True:
        try:
            heartbeat_worker(connect(), pid, role())
        except Exception as exc:  # never kill the worker for a missed beat
            log.warning("heartbeat failed: %s", exc)
        if STOP.wait(HEARTBEAT_S):
            return


def try_inference_role() -> bool:
    """Take the model lock if free; True when this process is (now) the inference worker."""
    lock = model_lock()
    was = lock.held
    got = lock.try_acquire()
    if got and not was:
        log.info("pid %s took the inference role (%s)", os.getpid(), lock.path)
        heartbeat_worker(connect(), os.getpid(), "inference")
    return got


def _engine_key(engine_name: str, model: str, cfg: EvalConfig) -> tuple:
    return (engine_name, model, cfg.n_ctx, cfg.n_gpu_layers, cfg.n_threads, cfg.kv_cache_type,
            cfg.local_endpoint, cfg.max_concurrent_requests, cfg.n_parallel)


def engine_for(engine_name: str, model: str, cfg: EvalConfig) -> Engine:
    """The engine for a run's model, created once per process and reused across chunks and trials.

    Only one engine is kept: a different model closes the previous one (one GPU, one model).
    """
    from workers.engines.faults import (  # lazy: engines load only when a task needs one
        maybe_abort_load,
        maybe_wrap,
    )
    from workers.engines.registry import create_engine  # lazy: engines load only when a task needs one
    from workers.last_words import load_output_kept  # lazy: as above

    key = _engine_key(engine_name, model, cfg)
    with _state_lock:
        _reset_if_forked()
        engines: dict[tuple, Engine] = _state["engines"]
        engine = engines.get(key)
        if engine is not None:
            return engine
        for old in list(engines.values()):
            try:
                old.close()
            except Exception as exc:
                log.warning("closing engine failed: %s", exc)
        engines.clear()
    with load_output_kept():  # native errors of a load that kills the process reach the pool's stop line
        maybe_abort_load()  # fault drill only (EXCELLENCE_FAULTS=load_abort=1)
        engine = maybe_wrap(create_engine(cfg, model=model, name=engine_name))
    facts = getattr(engine, "load_facts", None)
    if facts:  # the engine loaded model weights in this process: count it (one GPU, one model)
        record_model_load(connect(), os.getpid(), str(facts.get("model_path")), facts)
        log.info("pid %s loaded model %s", os.getpid(), facts.get("model_path"))
    with _state_lock:
        _state["engines"][key] = engine
    return engine


def close_engines() -> None:
    with _state_lock:
        engines = _state.get("engines") or {}
        for engine in engines.values():
            try:
                engine.close()
            except Exception:
                pass
        engines.clear()


def in_flight() -> set[int]:
    """Requests this process is sending or recording right now (the parent watch waits for them and
    gives them back). Here, not in ``inference``, so that the parent watch does not import inference."""
    with _in_flight_lock:
        return set(_in_flight)


def set_in_flight(request_id: int, sending: bool) -> None:
    """Mark a request as being sent and recorded by this process (``sending``) or done with."""
    with _in_flight_lock:
        if sending:
            _in_flight.add(request_id)
        else:
            _in_flight.discard(request_id)
