"""Inference work: run the requests of a chunk, with retries, and record each result once.

Why chunks: a chunk is N consecutive requests of one trial, temperature and condition (the order of
``iter_trial_requests``), so consecutive calls share the system prompt and llama.cpp reuses its
KV cache (ARCHITECTURE fact 5). Only the process holding the model lock runs inference; it also
drains queued chunks straight from the ledger so other processes' messages never leave it idle.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from config.schema import EvalConfig, validate_config_dict
from producer.ledger import connect
from producer.ledger.queries import get_run, is_stopped
from producer.ledger.writes import (
    claim_chunk,
    next_queued_chunk,
    record_failure,
    record_result,
    release_requests,
)
from workers.engines.base import (
    Engine,
    EngineResult,
    GenerationParams,
    PermanentEngineError,
    TransientEngineError,
)
from workers.engines.health import FailureWindow
from workers.worker_state import STOP, engine_for

log = logging.getLogger("workers")

DRAIN_BUDGET_S: float | None = None  # None: drain until no chunk is queued (other processes score/export)
_health: dict[str, FailureWindow] = {}
_health_lock = threading.Lock()


def health_of(run_id: str) -> FailureWindow:
    """This process's window over the run's last request outcomes (engine-down detection)."""
    with _health_lock:
        return _health.setdefault(run_id, FailureWindow())


def stop_run(conn: sqlite3.Connection, run_id: str, reason: str) -> None:
    """The engine is down or cannot start: stop the run with one clear reason instead of failing every
    remaining request after its retries; ``run --resume`` continues once the engine is back."""
    from producer.enqueue import set_run_stop

    health_of(run_id).reset()
    if is_stopped(conn, run_id):
        return
    set_run_stop(conn, run_id, True, reason=reason)
    log.error("run %s: %s", run_id, reason)


@lru_cache(maxsize=16)
def run_settings(run_id: str) -> tuple[EvalConfig, str]:
    """The run's config snapshot and engine name (frozen at enqueue: workers never read config files)."""
    row = get_run(connect(), run_id)
    if row is None:
        raise KeyError(f"unknown run {run_id}")
    cfg = validate_config_dict(json.loads(row["config_json"]), f"run {run_id}", check_files=False)
    return cfg, row["engine"]


def _messages(req: sqlite3.Row) -> tuple[list[dict[str, str]], GenerationParams]:
    body = json.loads(req["body"])
    messages = body["messages"]
    if messages and messages[0].get("role") == "system" and messages[0].get("content") is None:
        messages = [{"role": "system", "content": req["system_text"] or ""}] + messages[1:]
    return messages, GenerationParams.from_body(body)


def generate_with_retries(
    engine: Engine, req: sqlite3.Row, cfg: EvalConfig
) -> tuple[EngineResult | None, int, str | None]:
    """(result, attempts, error). Transient errors retry with exponential backoff; ``None, n, None``
    means the process is stopping and the request should go back to the queue."""
    messages, params = _messages(req)
    attempts = 0
    while True:
        attempts += 1
        try:
            return engine.generate(messages, params), attempts, None
        except TransientEngineError as exc:
            if attempts > cfg.max_retries:
                return None, attempts, f"gave up after {attempts} attempts: {exc}"
            delay = cfg.retry_backoff_s * (2 ** (attempts - 1))
            log.info("transient error on %s (attempt %s), retrying in %.1fs: %s", req["custom_id"], attempts,
                     delay, exc)
            if STOP.wait(delay):
                return None, attempts, None
        except PermanentEngineError as exc:
            return None, attempts, str(exc)
        except Exception as exc:  # an engine bug must not kill the run: record it, go on
            return None, attempts, f"unexpected {type(exc).__name__}: {exc}"


def _note_telemetry(cfg: EvalConfig, req: sqlite3.Row, result: EngineResult) -> None:
    """The telemetry sampler (GPU/CPU samples tagged with run and trial, stored in the ledger file)."""
    from telemetry.worker_hook import note_result

    note_result(cfg, req["run_id"], req["trial"], result)


def _run_one(engine: Engine, req: sqlite3.Row, cfg: EvalConfig, pid: int) -> str:
    """Run and record one request; returns done | failed | released."""
    conn = connect()
    if STOP.is_set() or is_stopped(conn, req["run_id"]):
        return "released"
    result, attempts, error = generate_with_retries(engine, req, cfg)
    window = health_of(req["run_id"])
    if result is not None:
        record_result(conn, req, result, attempts, pid)
        _note_telemetry(cfg, req, result)
        window.success()
        return "done"
    if error is None:
        return "released"
    record_failure(conn, req, error, attempts)
    log.warning("request %s failed: %s", req["custom_id"], error)
    if window.failure(error):
        stop_run(conn, req["run_id"], window.message())
    return "failed"


def process_chunk(run_id: str, chunk: int) -> dict[str, Any]:
    """Claim and run one chunk. Unfinished requests (stop, Ctrl+C) go back: queued with a new message
    when this process stops, pending when the run was stopped (resume re-sends them)."""
    from workers import tasks

    pid = os.getpid()
    conn = connect()
    rows = claim_chunk(conn, run_id, chunk, pid)
    if not rows:
        return {"claimed": 0}
    cfg, engine_name = run_settings(run_id)
    outcome: dict[int, str] = {}
    try:
        engine = engine_for(engine_name, rows[0]["model"], cfg)
        workers = cfg.max_concurrent_requests if engine.thread_safe else 1
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="infer") as pool:
                for req, state in zip(rows, pool.map(lambda r: _run_one(engine, r, cfg, pid), rows), strict=True):
                    outcome[req["id"]] = state
        else:
            for req in rows:
                outcome[req["id"]] = _run_one(engine, req, cfg, pid)
                if outcome[req["id"]] == "released":
                    break
    except PermanentEngineError as exc:  # the engine cannot start (model missing): nothing else can run
        stop_run(conn, run_id, f"engine cannot start: {exc}")
    finally:
        left = [r["id"] for r in rows if outcome.get(r["id"]) in (None, "released")]
        if left:
            stopped_run = is_stopped(conn, run_id)
            release_requests(conn, left, "pending" if stopped_run else "queued")
            if not stopped_run:
                tasks.infer_chunk(run_id, chunk)  # the message was consumed: send a new one
    tasks.after_chunk(run_id, chunk, rows[0]["trial"])
    return {"claimed": len(rows), "done": sum(1 for s in outcome.values() if s == "done")}


def drain(budget_s: float | None = DRAIN_BUDGET_S) -> int:
    """Run queued chunks straight from the ledger (oldest first) until none is left (or ``budget_s``)."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    ran = 0
    conn = connect()
    while not STOP.is_set() and (deadline is None or time.monotonic() < deadline):
        nxt = next_queued_chunk(conn)
        if nxt is None:
            break
        if not process_chunk(*nxt)["claimed"]:
            break
        ran += 1
    return ran
