"""No worker outlives its pool (issue 14 item 3): kill -9 of ``python -m workers`` mid-chunk with the real
SmolLM2 model, kill -9 of ``huey_consumer -k process``, and SIGTERM of the pool or of ``producer run``.
Each time every child is gone within seconds, records nothing after the kill, gives its claimed work
back and frees the model lock, and a new pool finishes the run with one result per request.
Real processes, real SQLite; POSIX signals (the Windows Job Object branch is checked statically)."""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from tests.support.cli import PY_FLAGS
from tests.support.cli import cli_env as env_for
from tests.support.paths import ROOT
from tests.support.pool_kill_drill import CHILD_EXIT_S, drill, kill_outright
from tests.support.pool_kill_drill import finish_with_new_pool as _finish_with_new_pool
from tests.support.pool_kill_drill import kill_leftovers as _kill_leftovers
from tests.support.pool_kill_drill import one_result_per_request as _one_result_per_request
from tests.support.queue_runs import (
    count_state,
    expected_ids,
    ledger,
    popen,
    producer,
    run_id_of,
    wait_for,
    write_config,
)
from workers.model_lock import ModelLock
from workers.parent_watch import POLL_S

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals; Windows uses the Job Object")
HUEY_CONSUMER = str(Path(sys.executable).parent / "huey_consumer")
LATE_S = 0.5  # a result whose write had begun when the kill landed


def _done(queue: Path, run_id: str) -> int:
    return count_state(queue, run_id, "done")


def _kill_parent_and_wait_children(parent: psutil.Process) -> tuple[float, list[psutil.Process]]:
    kids = parent.children(recursive=True)
    t_kill = time.time()
    kill_outright(parent.pid)
    _, alive = psutil.wait_procs(kids, timeout=CHILD_EXIT_S)
    return t_kill, alive


def _tasks_started_after(log: str, t: float) -> dict[int, int]:
    """Tasks each huey worker process began after time ``t``, from huey_consumer's own log lines."""
    started: dict[int, int] = {}
    for stamp, pid in re.findall(r"^\[([\d-]+ [\d:,]+)\] INFO:huey:(\d+):Executing ", log, flags=re.M):
        if datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() > t:
            started[int(pid)] = started.get(int(pid), 0) + 1
    return started


def _late_results(queue: Path, run_id: str, t_kill: float) -> int:
    with ledger(queue) as conn:
        return conn.execute("select count(*) from results where run_id = ? and created_at > ?",
                            (run_id, t_kill + LATE_S)).fetchone()[0]


def test_the_pool_kill_drill_passes(tmp_path):
    """The drill the Windows CI runs after ``taskkill /F`` (issue 23.5), here with SIGKILL: the pool's
    parent killed mid-run, every child gone within 10 s, a new pool finishes with one result each."""
    drill(tmp_path)


@posix_only
@pytest.mark.realmodel
def test_kill_9_of_the_pool_mid_chunk_ends_every_child_and_a_new_pool_takes_the_gpu_role(tmp_path):
    cfg = write_config(tmp_path, short_prompts=True, sizes={"squad_v2": 3, "triviaqa": 2, "nq_open": 2})
    queue = tmp_path / "queue"
    assert producer(["enqueue", "--config", str(cfg)], queue).returncode == 0
    run_id = run_id_of(queue)
    total = len(expected_ids(queue, run_id))
    pool = popen(["-m", "workers", "-w", "2"], queue, EXCELLENCE_FAULTS="delay_s=0.2")  # a kill lands mid-chunk
    parent = psutil.Process(pool.pid)
    alive: list[psutil.Process] = []
    try:
        wait_for(lambda: _done(queue, run_id) >= 2, 240, "the first results of the real model")
        assert len(parent.children()) >= 2  # the workers (and multiprocessing's resource tracker)
        with ledger(queue) as conn:
            old_holder = conn.execute("select pid from model_loads order by id desc").fetchone()[0]
        t_kill, alive = _kill_parent_and_wait_children(parent)
        pool.wait(10)
        assert alive == [], f"workers outlived the killed pool: {[p.pid for p in alive]}"
    finally:
        _kill_leftovers(alive)
        if pool.poll() is None:
            pool.kill()
    assert _done(queue, run_id) < total  # the kill landed mid-run
    assert _late_results(queue, run_id, t_kill) == 0
    assert count_state(queue, run_id, "running") == 0  # claimed work was given back, not left to a dead pid
    with ledger(queue) as conn:
        assert conn.execute("select max(crashes) from requests where run_id = ?", (run_id,)).fetchone()[0] == 0
    lock = ModelLock(queue / "model.lock")
    assert lock.try_acquire()  # the GPU role is free
    lock.release()
    new_pids = _finish_with_new_pool(queue, run_id)
    with ledger(queue) as conn:
        new_holder = conn.execute("select pid from model_loads order by id desc").fetchone()[0]
    assert new_holder != old_holder and new_holder in new_pids  # the new pool took the GPU role
    _one_result_per_request(tmp_path, queue, run_id)
    assert _done(queue, run_id) == total


@posix_only
def test_kill_9_of_huey_consumer_ends_its_process_workers(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run", sizes={"squad_v2": 4, "triviaqa": 3, "nq_open": 3})
    queue = tmp_path / "queue"
    assert producer(["enqueue", "--config", str(cfg)], queue).returncode == 0
    run_id = run_id_of(queue)
    consumer = popen([HUEY_CONSUMER, "producer.huey", "-w", "2", "-k", "process"], queue,
                     EXCELLENCE_FAULTS="delay_s=0.3")
    parent = psutil.Process(consumer.pid)
    alive: list[psutil.Process] = []
    try:
        wait_for(lambda: _done(queue, run_id) >= 2, 120, "results under huey_consumer")
        assert len(parent.children()) >= 2
        t_kill, alive = _kill_parent_and_wait_children(parent)
        consumer.wait(10)
        assert alive == [], f"huey workers outlived the killed consumer: {[p.pid for p in alive]}"
    finally:
        _kill_leftovers(alive)
        if consumer.poll() is None:
            consumer.kill()
    # An orphan takes no more tasks once it noticed (the one it may hold is given back): before, it
    # ran through every queued message as a no-op until its output pipe filled and blocked its exit.
    late = _tasks_started_after(consumer.stdout.read(), t_kill + 2 * POLL_S)
    assert all(n <= 1 for n in late.values()), f"orphaned huey workers kept taking tasks: {late}"
    assert _late_results(queue, run_id, t_kill) == 0
    assert count_state(queue, run_id, "running") == 0
    _finish_with_new_pool(queue, run_id)
    _one_result_per_request(tmp_path, queue, run_id)


@posix_only
def test_an_orphaned_huey_worker_takes_no_more_tasks(tmp_path):
    """Workers frozen while their consumer is killed and a run is enqueued, then thawed: each takes
    at most the one task it was about to start, claims nothing, sends nothing, and exits; a new pool
    finishes the run. (Before: an orphan claimed a chunk, gave it back, sent its message again and
    took it again, hundreds of times a second until it exited or its output pipe filled.)"""
    cfg = write_config(tmp_path, local_engine="dry_run", sizes={"squad_v2": 4, "triviaqa": 3, "nq_open": 3})
    queue = tmp_path / "queue"
    queue.mkdir()
    consumer = popen([HUEY_CONSUMER, "producer.huey", "-w", "2", "-k", "process", "-m", "0.1"], queue)
    parent = psutil.Process(consumer.pid)
    wait_for(lambda: len(parent.children()) >= 3, 60, "the scheduler and two workers")
    time.sleep(2.0)  # their startup hooks (the parent watch) have run
    kids = parent.children(recursive=True)
    alive = list(kids)
    try:
        for kid in kids:
            kid.suspend()
        os.kill(parent.pid, signal.SIGKILL)
        consumer.wait(10)
        assert producer(["enqueue", "--config", str(cfg)], queue).returncode == 0
        run_id = run_id_of(queue)
        t_thaw = time.time()
        for kid in kids:
            kid.resume()
        _, alive = psutil.wait_procs(kids, timeout=CHILD_EXIT_S)
        assert alive == [], f"orphaned huey workers did not exit: {[p.pid for p in alive]}"
    finally:
        _kill_leftovers(alive)
    late = _tasks_started_after(consumer.stdout.read(), t_thaw)
    assert all(n <= 1 for n in late.values()), f"orphaned huey workers kept taking tasks: {late}"
    assert _done(queue, run_id) == 0 and count_state(queue, run_id, "running") == 0
    _finish_with_new_pool(queue, run_id)
    _one_result_per_request(tmp_path, queue, run_id)


ORPHANED_EARLY = """
import multiprocessing, os, time


def child():
    time.sleep(1.5)  # the parent is gone before the watch starts (a slow startup hook)
    from workers import parent_watch

    parent_watch.start()
    time.sleep(30)
    os._exit(3)


if __name__ == "__main__":
    ctx = multiprocessing.get_context("fork")  # as huey_consumer -k process: the second child holds
    kids = [ctx.Process(target=child) for _ in range(2)]  # the first one's parent pipe open
    for kid in kids:
        kid.start()
    print(" ".join(str(kid.pid) for kid in kids), flush=True)
    os._exit(0)
"""


@posix_only
def test_forked_workers_whose_parent_died_before_the_watch_started_exit(tmp_path):
    script = tmp_path / "orphaned_early.py"
    script.write_text(ORPHANED_EARLY, encoding="utf-8")
    queue = tmp_path / "queue"
    queue.mkdir()
    out = subprocess.run([sys.executable, *PY_FLAGS, str(script)], cwd=ROOT, env=env_for(queue), text=True,
                         encoding="utf-8", capture_output=True, timeout=60, check=True).stdout
    kids = [psutil.Process(int(pid)) for pid in out.split()]
    _, alive = psutil.wait_procs(kids, timeout=CHILD_EXIT_S)
    _kill_leftovers(alive)
    assert alive == [], f"orphans that started watching late lived on: {[p.pid for p in alive]}"


@posix_only
def test_sigterm_of_the_pool_stops_like_ctrl_c_with_the_resume_hint(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run", sizes={"squad_v2": 4, "triviaqa": 3, "nq_open": 3})
    queue = tmp_path / "queue"
    assert producer(["enqueue", "--config", str(cfg)], queue).returncode == 0
    run_id = run_id_of(queue)
    pool = popen(["-m", "workers", "-w", "2"], queue, EXCELLENCE_FAULTS="delay_s=0.3")
    kids = psutil.Process(pool.pid).children()
    wait_for(lambda: _done(queue, run_id) >= 2, 120, "results")
    pool.send_signal(signal.SIGTERM)
    out, _ = pool.communicate(timeout=60)
    assert pool.returncode == 0, out
    assert "stopped: unfinished requests stay queued. continue with: python -m workers -w 2" in out
    assert "Traceback" not in out
    _, alive = psutil.wait_procs(kids, timeout=CHILD_EXIT_S)
    assert alive == []
    done_at_exit = _done(queue, run_id)
    time.sleep(1.0)
    assert _done(queue, run_id) == done_at_exit < len(expected_ids(queue, run_id))  # nobody kept draining
    assert count_state(queue, run_id, "running") == 0


@posix_only
def test_sigterm_of_producer_run_stops_its_pool_and_prints_the_resume_command(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run", sizes={"squad_v2": 4, "triviaqa": 3, "nq_open": 3})
    queue = tmp_path / "queue"
    run = popen(["-m", "producer", "run", "--config", str(cfg), "--workers", "2", "--no-preflight"], queue,
                EXCELLENCE_FAULTS="delay_s=0.3")
    wait_for(lambda: (queue / "ledger.sqlite3").exists() and _ledger_has_run(queue), 120, "the run to register")
    run_id = run_id_of(queue)
    wait_for(lambda: _done(queue, run_id) >= 2, 120, "results")
    kids = psutil.Process(run.pid).children()
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 130, out
    assert f"stopped. resume with: python -m producer run --resume {run_id}" in out
    _, alive = psutil.wait_procs(kids, timeout=CHILD_EXIT_S)
    assert alive == []
    done_at_exit = _done(queue, run_id)
    time.sleep(1.0)
    assert _done(queue, run_id) == done_at_exit < len(expected_ids(queue, run_id))


@posix_only
def test_a_second_stop_request_stops_at_once_and_still_prints_the_resume_command(tmp_path):
    """Ctrl+C, then Ctrl+C again while the workers finish their requests (issue 30, item 7): it printed
    only "interrupted"; now the pool stops at once and the resume command is printed."""
    cfg = write_config(tmp_path, local_engine="dry_run", sizes={"squad_v2": 4, "triviaqa": 3, "nq_open": 3})
    queue = tmp_path / "queue"
    run = popen(["-m", "producer", "run", "--config", str(cfg), "--workers", "2", "--no-preflight"], queue,
                EXCELLENCE_FAULTS="delay_s=4")
    wait_for(lambda: (queue / "ledger.sqlite3").exists() and _ledger_has_run(queue), 120, "the run to register")
    run_id = run_id_of(queue)
    wait_for(lambda: count_state(queue, run_id, "running") >= 1, 120, "a request in flight")
    kids = psutil.Process(run.pid).children()
    run.send_signal(signal.SIGINT)
    time.sleep(0.5)
    run.send_signal(signal.SIGINT)  # while the pool waits for the request in flight
    out, _ = run.communicate(timeout=60)
    assert run.returncode == 130, out
    assert f"resume with: python -m producer run --resume {run_id}" in out
    _, alive = psutil.wait_procs(kids, timeout=CHILD_EXIT_S)
    assert alive == []


def _ledger_has_run(queue: Path) -> bool:
    try:
        with ledger(queue) as conn:
            return conn.execute("select count(*) from requests").fetchone()[0] > 0
    except Exception:
        return False


@pytest.mark.unit
def test_windows_children_go_in_a_kill_on_close_job_object():
    """Static check of the Windows branch: the job's limit structure has winnt.h's layout and flag, and
    every Windows API call of the pool sits behind ``sys.platform == "win32"``."""
    from workers import pool

    info = pool.job_limit_information(pool._KillOnCloseJob.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE)
    import ctypes

    if ctypes.sizeof(ctypes.c_void_p) == 8:
        assert ctypes.sizeof(info) == 144  # JOBOBJECT_EXTENDED_LIMIT_INFORMATION on 64-bit Windows
        assert type(info).IoInfo.offset == 64 and type(info).BasicLimitInformation.size == 64
    assert info.BasicLimitInformation.LimitFlags == 0x2000
    assert pool._KillOnCloseJob.JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS == 9
    job = pool._KillOnCloseJob()
    if sys.platform != "win32":
        assert job.handle is None
        job.add(os.getpid())  # a no-op here
    tree = ast.parse((ROOT / "workers" / "pool.py").read_text(encoding="utf-8"))
    init = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "_KillOnCloseJob")
    init_fn = next(n for n in init.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    guard = next(i for i, n in enumerate(init_fn.body) if isinstance(n, ast.If) and "win32" in ast.unparse(n.test))
    later = ast.unparse(ast.Module(body=init_fn.body[guard + 1:], type_ignores=[]))
    assert "WinDLL" in later and "CreateJobObjectW" in later and "SetInformationJobObject" in later
    assert "WinDLL" not in ast.unparse(ast.Module(body=init_fn.body[:guard], type_ignores=[]))
    source = ast.unparse(tree)
    assert source.count("WinDLL") == 1 and "AssignProcessToJobObject" in source
    assert "self._job.add(proc.pid)" in source
