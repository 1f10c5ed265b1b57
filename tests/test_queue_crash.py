"""Crash safety of the producer: kill -9 during enqueue at several moments, then resume: every
expected custom_id ends with exactly one result. (Worker kills with the real model: test_pool_realmodel.)"""

from __future__ import annotations

import subprocess
import sys
import time

from tests.support.cli import PY_FLAGS
from tests.support.cli import cli_env as env_for
from tests.support.paths import ROOT
from tests.support.queue_runs import (
    count_state,
    expected_ids,
    ledger,
    producer,
    read_predictions,
    results_dir,
    write_config,
)


def test_kill_9_of_the_producer_during_enqueue_then_resume(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run", sizes={"squad_v2": None, "triviaqa": None, "nq_open": None})
    queue = tmp_path / "queue"
    cmd = [sys.executable, *PY_FLAGS, "-m", "producer", "enqueue", "--config", str(cfg), "--run-id", "crashy"]
    for delay in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0):  # import ~0.5 s, whole enqueue ~0.9 s
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env_for(queue), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()  # SIGKILL on POSIX
        proc.wait(10)
    again = producer(["enqueue", "--config", str(cfg), "--run-id", "crashy"], queue)
    assert again.returncode == 0, again.stderr
    with ledger(queue) as conn:
        assert conn.execute("select count(*) from requests where run_id = 'crashy'").fetchone()[0] == 168
    out = producer(["run", "--resume", "crashy", "--workers", "1"], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    assert count_state(queue, "crashy", "done") == 168
    _, rows = read_predictions(results_dir(tmp_path, "crashy") / "predictions.csv")
    ids = [r["custom_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 168 and sorted(ids) == expected_ids(queue, "crashy")
    with ledger(queue) as conn:
        assert conn.execute("select count(*) from results").fetchone()[0] == 168
