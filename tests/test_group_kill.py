"""Only deaths a worker caused itself are charged to its request (issue 30, item 6).

Why: ``kill -9 -- -PGID`` (what ``timeout -s KILL``, a service manager's final SIGKILL or a power loss
do) three times during one request failed that request as "the worker process died 3 times while
running this request"; the request did nothing wrong. And SIGHUP to the group (a closed terminal)
counted as a crash, with no graceful stop and no resume hint. Real processes in their own session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from producer.ledger.writes import MAX_CRASHES
from tests.support.cli import PY_FLAGS, cli_env
from tests.support.paths import ROOT
from tests.support.queue_runs import count_state, expected_ids, ledger, run_id_of, write_config

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGHUP are POSIX")
pytestmark = [pytest.mark.slow, posix_only]
SIZES = {"squad_v2": 2, "triviaqa": 1, "nq_open": 1}  # 8 requests


def _start(args: list[str], queue, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *PY_FLAGS, "-m", "producer", *args], cwd=ROOT,
                            env=cli_env(queue, **extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, encoding="utf-8", start_new_session=True)  # its own process group


def _wait_in_flight(queue, proc: subprocess.Popen, request: int | None = None, timeout: float = 120) -> int:
    """The id of a request being sent now (``request``: that one; the ledger's ``in_flight`` flag)."""
    deadline = time.monotonic() + timeout
    which = "" if request is None else f" and id = {int(request)}"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            with ledger(queue) as conn:
                row = conn.execute("select id from requests where state = 'running' and in_flight = 1"
                                   + which).fetchone()
            if row:
                return int(row[0])
        except Exception:  # noqa: BLE001 - the ledger may not exist yet
            pass
        time.sleep(0.05)
    raise AssertionError("no request went in flight")


def test_killing_the_whole_group_charges_no_request(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run", sizes=SIZES)
    queue = tmp_path / "queue"
    slow = "delay_s=3"  # every answer takes 3 s: each kill lands while one request is in flight
    proc = _start(["run", "--config", str(cfg), "-w", "1", "--no-preflight"], queue, EXCELLENCE_FAULTS=slow)
    run_id = request = None
    for kill in range(MAX_CRASHES):
        request = _wait_in_flight(queue, proc, request)  # the same request, sent again each time
        run_id = run_id or run_id_of(queue)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole tree, as a power loss or timeout -s KILL
        proc.wait(10)
        last = kill == MAX_CRASHES - 1  # the last resume only has to finish: no 3 s per answer
        proc = _start(["run", "--resume", run_id, "-w", "1"], queue, **({} if last else {"EXCELLENCE_FAULTS": slow}))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert count_state(queue, run_id, "failed") == 0 and "died 3 times" not in out
    with ledger(queue) as conn:
        keys = sorted(r[0] for r in conn.execute("select custom_id from results where run_id = ?", (run_id,)))
    assert keys == expected_ids(queue, run_id)  # one result per request


def test_sighup_to_the_group_stops_gracefully_and_prints_the_resume_command(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run", sizes=SIZES)
    queue = tmp_path / "queue"
    proc = _start(["run", "--config", str(cfg), "-w", "1", "--no-preflight"], queue, EXCELLENCE_FAULTS="delay_s=1")
    request = _wait_in_flight(queue, proc)
    run_id = run_id_of(queue)
    os.killpg(proc.pid, signal.SIGHUP)  # the terminal closed
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert f"resume with: python -m producer run --resume {run_id}" in out
    with ledger(queue) as conn:
        crashes = conn.execute("select crashes from requests where id = ?", (request,)).fetchone()[0]
        running = conn.execute("select count(*) from requests where state = 'running'").fetchone()[0]
    assert crashes == 0 and running == 0  # finished (or given back), never charged as a crash
