"""Inference work: run the requests of a chunk, with retries, and record each result once.

Why chunks: a chunk is N consecutive requests of one trial, temperature and condition (the order of
``iter_trial_requests``), so consecutive calls share the system prompt and llama.cpp reuses its
KV cache (docs/architecture.md fact 5). Only the process holding the model lock runs inference; it also
drains queued chunks straight from the ledger so other processes' messages never leave it idle.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from config.schema import EvalConfig
from producer.ledger import connect
from producer.ledger.queries import is_stopped
from producer.ledger.run_record import run_settings, set_run_stop
from producer.ledger.writes import (
    claim_chunk,
    claim_next_chunk,
    mark_in_flight,
    record_failure,
    record_result,
    release_requests,
    reopen_failed,
)
from workers.engines.base import (
    Engine,
    EngineResult,
    GenerationParams,
    PermanentEngineError,
    TransientEngineError,
)
from workers.engines.health import PROBE_TIMEOUT_S, FailureWindow, answers_at_all, wait_until_answering
from workers.engines.http_common import EngineTimeoutError, EngineUnreachableError
from workers.parent_watch import parent_gone
from workers.response_cache import cache_for, regenerated
from workers.worker_state import STOP, engine_for, set_in_flight

log = logging.getLogger("workers")
T = TypeVar("T")

_health: dict[str, FailureWindow] = {}
_health_lock = threading.Lock()


class Failure(str):
    """The error line of a request that did not succeed, and what caused it: ``transient`` (the engine
    or the network, so an outage can explain it) and ``down`` (the engine stopped answering: the run
    stops with this reason and the request waits for the resume)."""

    transient: bool = False
    down: str | None = None

    @classmethod
    def of(cls, text: str, transient: bool = False, down: str | None = None) -> Failure:
        out = cls(text)
        out.transient, out.down = transient, down
        return out


def _stopping(run_id: str) -> bool:
    return STOP.is_set() or parent_gone() or is_stopped(connect(), run_id)


def health_of(run_id: str) -> FailureWindow:
    """This process's window over the run's last request outcomes (engine-down detection)."""
    with _health_lock:
        return _health.setdefault(run_id, FailureWindow())


def stop_run(conn: sqlite3.Connection, run_id: str, reason: str, reopen: list[int] | None = None) -> None:
    """The engine is down or cannot start: stop the run with one clear reason instead of failing every
    remaining request after its retries; ``run --resume`` continues once the engine is back. ``reopen``:
    requests that failed because of the outage, given back (pending) so that resume sends them again."""
    health_of(run_id).reset()
    if not is_stopped(conn, run_id):
        set_run_stop(conn, run_id, True, reason=reason)
        log.error("run %s: %s", run_id, reason)
    if reopen:
        reopen_failed(conn, run_id, reopen)


def _messages(req: sqlite3.Row) -> tuple[list[dict[str, str]], GenerationParams]:
    body = json.loads(req["body"])
    messages = body["messages"]
    if messages and messages[0].get("role") == "system" and messages[0].get("content") is None:
        messages = [{"role": "system", "content": req["system_text"] or ""}] + messages[1:]
    return messages, GenerationParams.from_body(body)


def generate_with_retries(
    engine: Engine, req: sqlite3.Row, cfg: EvalConfig
) -> tuple[EngineResult | None, int, Failure | None]:
    """(result, attempts, error). Transient errors retry with exponential backoff; ``None, n, None``
    means the process or the run is stopping and the request should go back to the queue. A server
    that stops answering (``health``: timeouts in a row, or no answer at all) ends the retries at once
    with ``error.down`` set."""
    messages, params = _messages(req)
    run_id = req["run_id"]
    attempts = 0
    while True:
        attempts += 1
        try:
            return engine.generate(messages, params), attempts, None
        except EngineUnreachableError as exc:  # nothing listens: wait for the engine, spend no attempt
            attempts -= 1
            base = getattr(engine, "base_url", None)
            _say_waiting(str(exc), cfg.outage_wait_s)
            if wait_until_answering(base, cfg.outage_wait_s, lambda: STOP.is_set() or _stopping(run_id)):
                continue
            if STOP.is_set() or _stopping(run_id):
                return None, attempts, None
            return None, attempts, Failure.of(str(exc), True, f"engine down: {exc}; it did not come back within "
                                                              f"{cfg.outage_wait_s:g} s (outage_wait_s); stopping the run")
        except TransientEngineError as exc:
            if isinstance(exc, EngineTimeoutError):
                window = health_of(run_id)
                in_flight_max = (getattr(engine, "concurrency", None) or cfg.static_in_flight()) if getattr(engine, "thread_safe", False) else 1
                hung = window.timeout(str(exc), in_flight_max)
                # a GET / that takes longer than a whole request may take is no answer either
                probe_s = min(PROBE_TIMEOUT_S, cfg.request_timeout_s)
                if hung or not answers_at_all(getattr(engine, "base_url", None), probe_s):
                    return None, attempts, Failure.of(str(exc), True, window.hung_message(probe_failed=not hung))
            if attempts > cfg.max_retries:
                return None, attempts, Failure.of(f"gave up after {attempts} attempts: {exc}", transient=True)
            delay = retry_delay_s(cfg, attempts, exc)
            log.info("transient error on %s (attempt %s), retrying in %.1fs: %s", req["custom_id"], attempts,
                     delay, exc)
            if STOP.wait(delay) or _stopping(run_id):
                return None, attempts, None
        except PermanentEngineError as exc:
            return None, attempts, Failure.of(str(exc))
        except Exception as exc:  # an engine bug must not kill the run: record it, go on
            return None, attempts, Failure.of(f"unexpected {type(exc).__name__}: {exc}")


def retry_delay_s(cfg: EvalConfig, attempts: int, exc: TransientEngineError) -> float:
    """Exponential from ``retry_backoff_s``, and never less than the server's own Retry-After."""
    return max(cfg.retry_backoff_s * (2 ** (attempts - 1)), exc.retry_after or 0.0)


_waiting_said: set[str] = set()


def _say_waiting(error: str, wait_s: float) -> None:
    """Once per process and outage message: the run is waiting, not stuck."""
    if error not in _waiting_said:
        _waiting_said.add(error)
        log.warning("%s; waiting up to %g s for it to come back (outage_wait_s)", error, wait_s)


def _note_telemetry(cfg: EvalConfig, req: sqlite3.Row, result: EngineResult) -> None:
    """The telemetry sampler (GPU/CPU samples tagged with run and trial, stored in the ledger file)."""
    from telemetry.worker_hook import note_result  # lazy: psutil/NVML, only when telemetry is on

    note_result(cfg, req["run_id"], req["trial"], result)


def _remember(cfg: EvalConfig, engine: Engine, req: sqlite3.Row, result: EngineResult) -> None:
    """``cache: true``: keep a deterministic answer for later runs (workers.response_cache)."""
    cache = cache_for(cfg, engine.name, req["model"])
    if cache is not None and not regenerated(cfg, req["trial"], req["condition"]):
        cache.remember(*_messages(req), result)


def _answer_from_cache(rows: list[sqlite3.Row], cfg: EvalConfig, engine_name: str, pid: int,
                       outcome: dict[int, str]) -> list[sqlite3.Row]:
    """``cache: true``: requests with a cached answer are recorded now, without the engine (which is not
    even created when every request hits); returns the requests still to run."""
    cache = cache_for(cfg, engine_name, rows[0]["model"])
    if cache is None or _stopping(rows[0]["run_id"]):
        return rows
    todo = []
    for req in rows:
        result = None if regenerated(cfg, req["trial"], req["condition"]) else cache.lookup(*_messages(req))
        if result is None:
            todo.append(req)
        else:
            record_result(connect(), req, result, 0, pid)
            outcome[req["id"]] = "done"
    return todo


def _run_one(engine: Engine, req: sqlite3.Row, cfg: EvalConfig, pid: int) -> str:
    """Run and record one request; returns done | failed | released.

    The request is charged a worker death while it is in flight (``mark_in_flight``), so a crash loop
    ends after MAX_CRASHES, while deaths before anything was sent (model loading) charge no request."""
    conn = connect()
    rid = req["id"]
    set_in_flight(rid, True)
    try:
        if _stopping(req["run_id"]):
            return "released"
        mark_in_flight(conn, rid, True)
        result, attempts, error = generate_with_retries(engine, req, cfg)
        if parent_gone():  # the pool died meanwhile: nothing is recorded; the next pool sends it again
            mark_in_flight(conn, rid, False)
            return "released"
        window = health_of(req["run_id"])
        if result is not None:
            record_result(conn, req, result, attempts, pid, refund_crash=True)
            _remember(cfg, engine, req, result)
            _note_telemetry(cfg, req, result)
            window.success()
            return "done"
        mark_in_flight(conn, rid, False)
        if error is None:
            return "released"
        if error.down:  # the server hangs: stop now; this request waits for the resume
            stop_run(conn, req["run_id"], error.down, reopen=window.failed_ids())
            return "released"
        if error.transient and is_stopped(conn, req["run_id"]):  # the run stopped for an outage meanwhile
            return "released"
        record_failure(conn, req, error, attempts)
        log.warning("request %s failed: %s", req["custom_id"], error)
        if window.failure(error, rid if error.transient else None):
            stop_run(conn, req["run_id"], window.message(), reopen=window.failed_ids())
        return "failed"
    finally:
        set_in_flight(rid, False)


def feed_slots(workers: int, first: list[T], more: Callable[[], list[T] | None],
               run: Callable[[T], str], record: Callable[[T, str], None]) -> None:
    """Run ``first`` on ``workers`` threads and keep every thread busy: as soon as no item waits for a
    thread, ``more()`` adds the next ones (None: nothing more), so a slot that frees near the end of
    one chunk starts the next chunk's first request at once. ``record`` sees each outcome in this
    thread; a ``released`` outcome (stopping) ends the feeding.

    Why here and not per chunk: a chunk of 16 on P slots leaves slots idle for its whole tail; the
    batched engine decodes P sequences for about the price of one, so idle slots are lost speed."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="infer") as pool:
        waiting = {pool.submit(run, item): item for item in first}
        fed = True
        while waiting or fed:
            if fed and len(waiting) <= workers:  # no item queued behind the running ones: fetch more
                nxt = more()
                if nxt is None:
                    fed = False
                else:
                    waiting.update({pool.submit(run, item): item for item in nxt})
                continue
            done, _ = wait(waiting, return_when=FIRST_COMPLETED)
            for future in done:
                state = future.result()
                record(waiting.pop(future), state)
                fed = fed and state != "released"


def process_chunk(run_id: str, chunk: int, requeue: Callable[[str, int], None],
                  finished: Callable[[str, int, str], None] | None = None) -> dict[str, Any]:
    """Claim and run one chunk, and with an engine that runs several requests at once (the batched
    llama.cpp engine, HTTP engines) the run's next queued chunks while it drains (``feed_slots``):
    ``finished(run_id, chunk, trial)`` is called once per chunk run, as soon as each is. Unfinished
    requests (stop, Ctrl+C) go back: queued, with ``requeue`` sending a new message for each chunk,
    when this process stops; pending when the run was stopped (resume re-sends them).

    Why a callback: sending messages is the task layer's job (workers.tasks); this module only runs
    requests, so it imports no task and the two modules form no import cycle.
    """
    pid = os.getpid()
    conn = connect()
    if parent_gone():  # an orphan claims nothing (the next pool's reconcile sends the chunk again)
        return {"claimed": 0}
    rows = claim_chunk(conn, run_id, chunk, pid)
    if not rows:
        return {"claimed": 0}
    cfg, engine_name = run_settings(run_id)
    outcome: dict[int, str] = {}
    chunks: dict[int, list[sqlite3.Row]] = {chunk: rows}  # every chunk claimed, in order
    open_in: dict[int, int] = {chunk: len(rows)}  # requests of each chunk without a final outcome yet
    chunk_of: dict[int, int] = {r["id"]: chunk for r in rows}

    def report(number: int) -> None:
        if finished is not None and open_in.pop(number, None) is not None:
            finished(run_id, number, chunks[number][0]["trial"])

    def record(req: sqlite3.Row, state: str) -> None:
        outcome[req["id"]] = state
        number = chunk_of[req["id"]]
        if state in ("done", "failed") and number in open_in:
            open_in[number] -= 1
            if not open_in[number]:
                report(number)

    def from_cache(claimed: list[sqlite3.Row]) -> list[sqlite3.Row]:
        cached: dict[int, str] = {}
        todo = _answer_from_cache(claimed, cfg, engine_name, pid, cached)
        for r in claimed:
            if r["id"] in cached:
                record(r, cached[r["id"]])
        return todo

    def more() -> list[sqlite3.Row] | None:
        """The next queued chunk of this run, claimed now; its cached answers recorded at once."""
        while not (_stopping(run_id) or parent_gone()):
            nxt = claim_next_chunk(conn, run_id, max(chunks), pid, rows[0]["model"])
            if nxt is None:
                return None
            number, claimed = nxt
            chunks[number], open_in[number] = claimed, len(claimed)
            chunk_of.update((r["id"], number) for r in claimed)
            if todo := from_cache(claimed):
                return todo
        return None

    try:
        todo = from_cache(rows)
        engine = engine_for(engine_name, rows[0]["model"], cfg) if todo else None
        # the engine says how many requests it keeps in flight: the batched llama.cpp engine 2 x
        # n_parallel (P decoding, P waiting tokenized), an HTTP engine max_concurrent_requests (auto:
        # llama-server's slots). Both batch
        # continuously, so a draining slot takes the run's next chunk (feed_slots' crash rules hold)
        slots = getattr(engine, "concurrency", None) or 0
        workers = slots or cfg.static_in_flight() if engine is not None and engine.thread_safe else 1
        if workers > 1:
            feed_slots(workers, todo, more if slots > 1 else lambda: None, lambda r: _run_one(engine, r, cfg, pid),
                       record)
        else:
            for req in todo:
                outcome[req["id"]] = _run_one(engine, req, cfg, pid)
                if outcome[req["id"]] == "released":
                    break
    except PermanentEngineError as exc:  # the engine cannot start (model missing): nothing else can run
        stop_run(conn, run_id, f"engine cannot start: {exc}")
    finally:
        left = [r["id"] for part in chunks.values() for r in part if outcome.get(r["id"]) in (None, "released")]
        if left:
            stopped_run = is_stopped(conn, run_id)
            release_requests(conn, left, "pending" if stopped_run else "queued")
            if not stopped_run and not parent_gone():  # an orphan's message would only come back to it
                for number in sorted({chunk_of[i] for i in left}):
                    requeue(run_id, number)  # the message was consumed (or its chunk taken): send a new one
    for number in list(open_in):
        report(number)
    return {"claimed": sum(len(part) for part in chunks.values()), "done": sum(1 for s in outcome.values() if s == "done"),
            "trial": rows[0]["trial"], "chunks": sorted(chunks)}
