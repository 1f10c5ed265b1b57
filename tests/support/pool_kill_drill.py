"""The worker pool's parent killed outright: every worker is gone within 10 s and a new pool finishes
the run with one result per request (issue 23, item 5).

Why a script: the Windows CI runner runs it (``python -m tests.support.pool_kill_drill``), where the kill
is ``taskkill /F`` and only the pool's Job Object can end the children; tests/test_orphan_workers.py
runs the same steps on POSIX (SIGKILL), so the drill's logic is tested here too. The dry-run engine
with a fault delay keeps the run long enough for the kill to land mid-run; no model is needed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from tests.support.queue_runs import (
    count_state,
    expected_ids,
    ledger,
    popen,
    producer,
    read_predictions,
    results_dir,
    run_id_of,
    run_state,
    stop_process,
    wait_for,
    write_config,
)

CHILD_EXIT_S = 10  # the acceptance bound of issue 14 item 3
SIZES = {"squad_v2": 4, "triviaqa": 3, "nq_open": 3}


def kill_outright(pid: int) -> None:
    """The parent only, with no chance to clean up: ``taskkill /F`` on Windows (no ``/T``: ending the
    children is the pool's job), SIGKILL elsewhere."""
    if sys.platform == "win32":
        subprocess.run(["taskkill", "/F", "/PID", str(pid)], check=True, capture_output=True, timeout=30)
    else:
        os.kill(pid, signal.SIGKILL)


def kill_parent_and_wait_children(parent: psutil.Process) -> list[psutil.Process]:
    """Kill ``parent`` outright; the descendants still alive ``CHILD_EXIT_S`` seconds later."""
    kids = parent.children(recursive=True)
    kill_outright(parent.pid)
    _, alive = psutil.wait_procs(kids, timeout=CHILD_EXIT_S)
    return alive


def kill_leftovers(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def finish_with_new_pool(queue: Path, run_id: str, timeout: float = 240) -> set[int]:
    """A new ``python -m workers -w 2`` runs until the run is done; returns its children's pids."""
    pool = popen(["-m", "workers", "-w", "2"], queue)
    kids: set[int] = set()
    try:
        wait_for(lambda: run_state(queue, run_id) == "done", timeout, "a new pool to finish the run")
        kids = {p.pid for p in psutil.Process(pool.pid).children(recursive=True)}
    finally:
        out = stop_process(pool)
    assert "Traceback" not in out, out
    return kids


def one_result_per_request(tmp: Path, queue: Path, run_id: str) -> None:
    ids = expected_ids(queue, run_id)
    with ledger(queue) as conn:
        keys = [r[0] for r in conn.execute("select custom_id from results where run_id = ?", (run_id,))]
    assert sorted(keys) == ids, f"results {len(keys)} for {len(ids)} requests"
    _, rows = read_predictions(results_dir(tmp, run_id) / "predictions.csv")
    assert sorted(r["custom_id"] for r in rows) == ids


def drill(tmp: Path) -> None:
    """Enqueue a dry-run run, start the pool, kill its parent mid-run, check, finish with a new pool.
    Raises AssertionError with what went wrong."""
    cfg = write_config(tmp, local_engine="dry_run", sizes=SIZES)
    queue = tmp / "queue"
    enqueued = producer(["enqueue", "--config", str(cfg)], queue)
    assert enqueued.returncode == 0, enqueued.stdout + enqueued.stderr
    run_id = run_id_of(queue)
    total = len(expected_ids(queue, run_id))
    pool = popen(["-m", "workers", "-w", "2"], queue, EXCELLENCE_FAULTS="delay_s=0.3")
    alive: list[psutil.Process] = []
    try:
        wait_for(lambda: count_state(queue, run_id, "done") >= 2, 120, "the pool's first results")
        assert len(psutil.Process(pool.pid).children(recursive=True)) >= 2, "the pool started no workers"
        alive = kill_parent_and_wait_children(psutil.Process(pool.pid))
        pool.wait(10)
        assert alive == [], f"workers outlived the killed pool by {CHILD_EXIT_S} s: {[p.pid for p in alive]}"
    finally:
        kill_leftovers(alive)
        if pool.poll() is None:
            pool.kill()
    assert count_state(queue, run_id, "done") < total, "the kill landed after the run ended"
    finish_with_new_pool(queue, run_id)
    one_result_per_request(tmp, queue, run_id)


def main() -> int:
    """Run the drill in a temporary folder; one line, exit 0 when it passed."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        try:
            drill(Path(tmp))
        except AssertionError as exc:
            print(f"pool kill drill FAILED: {exc}", flush=True)
            return 1
    print(f"pool kill drill passed: children gone within {CHILD_EXIT_S} s, a new pool finished the run", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
