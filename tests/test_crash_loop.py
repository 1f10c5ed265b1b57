"""No crash loops (issue 23, item 3): a model load that aborts every worker stops the run by itself with
one line, and the run resumes to completion once the load works.

Why: ``producer run`` printed ``worker-0 (pid ...) exited with -6: restarting`` for ever; a death during
the load is charged to no request, so nothing else ever ended it. The abort is the real process dying
(``EXCELLENCE_FAULTS=load_abort=1`` calls abort() where the model would load), under the real pool.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from producer.host.exit_codes import OK, STOPPED
from tests.support.cli import run_cli
from tests.support.offline_config import write_offline_config
from workers.pool import CRASH_LOOP_DEATHS, CRASH_LOOP_WINDOW_S

pytestmark = pytest.mark.slow


def test_a_load_that_aborts_stops_the_run_then_resume_finishes_it(tmp_path):
    cfg = write_offline_config(tmp_path)
    queue = tmp_path / "queue"
    start = time.monotonic()
    first = run_cli(["run", "--config", str(cfg), "-w", "1"], cwd=tmp_path, queue=queue, timeout=150,
                    EXCELLENCE_FAULTS="load_abort=1")
    took = time.monotonic() - start
    assert first.returncode == STOPPED, first.stdout + first.stderr
    assert took < CRASH_LOOP_WINDOW_S  # by itself, well within the 2 minutes the issue allows
    line = next(ln for ln in first.stdout.splitlines() if "stopped:" in ln and "died" in ln)
    assert f"workers died {CRASH_LOOP_DEATHS} times" in line and "(abort)" in line
    assert "its last words: ggml_cuda_init: failed to initialize CUDA" in line  # the child's own stderr
    assert "python -m producer doctor" in line and "run --resume" in line
    assert "Traceback" not in first.stdout + first.stderr
    assert first.stderr.count("restarting") == CRASH_LOOP_DEATHS - 1  # then no more restarts
    run_id = json.loads((next((tmp_path / "experiments").glob("run_*")) / "run_state.json")
                        .read_text(encoding="utf-8"))["run_id"]
    again = run_cli(["run", "--resume", run_id, "-w", "1"], cwd=tmp_path, queue=queue, timeout=150)
    assert again.returncode == OK, again.stdout + again.stderr
    db = sqlite3.connect(queue / "ledger.sqlite3")
    try:
        results, distinct = db.execute("select count(*), count(distinct custom_id || trial) from results").fetchone()
        total = db.execute("select count(*) from requests").fetchone()[0]
    finally:
        db.close()
    assert results == distinct == total > 0  # one result per request
    assert not list((queue / "logs").glob("worker-*-load.log"))  # the last words were read and removed
