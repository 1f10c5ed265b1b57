"""A real run's two chunks through ``workers.inference.process_chunk`` (issue 28: one call feeds the
engine's slots across chunks), shared by the batched llama.cpp tests and the HTTP engine tests: both run
the same steps and assert the same crash rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.queue_runs import ledger, producer, run_id_of


def enqueued_chunks(cfg: Path, queue: Path) -> tuple[str, list[int]]:
    """(run id, its chunks in order) after ``enqueue``."""
    assert producer(["enqueue", "--config", str(cfg)], queue).returncode == 0
    run_id = run_id_of(queue)
    with ledger(queue) as conn:
        chunks = [r[0] for r in conn.execute("select distinct chunk from requests where run_id = ? order by chunk",
                                             (run_id,))]
    return run_id, chunks


def both_chunks_in_one_call(run_id: str, chunks: list[int]) -> tuple[dict[str, Any], dict[str, Any], list, list]:
    """(first call's outcome, second chunk's own call's outcome, chunks reported finished, re-sent)."""
    from workers.inference import process_chunk
    from workers.worker_state import close_engines

    finished: list = []
    requeued: list = []
    try:
        out = process_chunk(run_id, chunks[0], requeue=lambda *a: requeued.append(a),
                            finished=lambda *a: finished.append(a[1]))
        again = process_chunk(run_id, chunks[1], requeue=lambda *a: requeued.append(a))
    finally:
        close_engines()
    return out, again, finished, requeued


def results_per_request(queue: Path, run_id: str) -> list[int]:
    with ledger(queue) as conn:
        rows = conn.execute("select count(r.custom_id) from requests q left join results r on r.run_id = q.run_id"
                            " and r.custom_id = q.custom_id and r.trial = q.trial where q.run_id = ? group by q.id",
                            (run_id,)).fetchall()
    return [n for (n,) in rows]


def ctrl_c_after_first_chunk(queue: Path, run_id: str, first: int, second: int) -> dict[str, Any]:
    """Ctrl+C (the process's STOP) as soon as the first chunk has finished: what the call returned and
    re-sent, the second chunk's request states, the results, and requests a worker still holds."""
    from workers.inference import process_chunk
    from workers.worker_state import STOP, close_engines

    requeued: list = []
    try:
        out = process_chunk(run_id, first, requeue=lambda *a: requeued.append(a), finished=lambda *a: STOP.set())
    finally:
        STOP.clear()
        close_engines()
    with ledger(queue) as conn:
        states = dict(conn.execute("select state, count(*) from requests where run_id = ? and chunk = ? group by state",
                                   (run_id, second)).fetchall())
        results = conn.execute("select count(*) from results where run_id = ?", (run_id,)).fetchone()[0]
        held = conn.execute("select count(*) from requests where worker is not null and state != 'done'").fetchone()[0]
    return {"out": out, "requeued": requeued, "states": states, "results": results, "held": held}
