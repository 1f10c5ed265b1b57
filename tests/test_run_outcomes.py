"""The record says what happened (issues 12.1-12.3, 13.5, 13.8): dry runs are marked in every artifact,
``run``'s exit status tells a complete run from a partial, a failed, an interrupted and an unwritable one,
``status`` tells a stalled run from an active one, and a failing export stops the run with its reason.

Real ``python -m producer`` processes, the dry_run engine (with the fault injector where requests must
fail), real SQLite, real file permissions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from config.schema import load_config
from tests.support.cli import PY_FLAGS
from tests.support.cli import cli_env as env_for
from tests.support.paths import ROOT
from tests.support.queue_runs import ledger, popen, producer, run_id_of, stop_process, wait_for, write_config

# the exit codes of producer/host/exit_codes.py, spelled out: the README table promises these numbers
STOPPED, SOME_FAILED, ALL_FAILED, NOT_WRITTEN, INTERRUPTED = 1, 3, 4, 5, 130


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _trial_results(tmp: Path, run_id: str) -> Path:
    dirs = list((tmp / "experiments" / f"run_{run_id}").glob("*/results"))
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_dry_run_is_recorded_as_a_dry_run(tmp_path) -> None:
    cfg = write_config(tmp_path)  # a llama_cpp config, run with --dry-run
    queue = tmp_path / "queue"
    out = producer(["enqueue", "--config", str(cfg), "--dry-run"], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = run_id_of(queue)
    run_dir = tmp_path / "experiments" / f"run_{run_id}"
    manifest = _json(_trial_results(tmp_path, run_id) / "trial_manifest.json")
    assert manifest["dry_run"] is True
    assert manifest["engine"]["engine"] == "dry_run"
    assert _json(run_dir / "run_state.json")["dry_run"] is True
    text = (run_dir / "effective_config.yaml").read_text(encoding="utf-8")
    assert "# DRY RUN: synthetic answers" in text
    assert yaml.safe_load(text)["local_engine"] == "dry_run"
    assert load_config(run_dir / "effective_config.yaml").local_engine == "dry_run"  # still loadable


@pytest.mark.unit
def test_a_real_engine_run_is_not_marked_dry(tmp_path) -> None:
    from producer.runs import manifests
    from producer.runs.trials import expand_trials

    cfg = load_config(write_config(tmp_path, local_engine="ollama", local_model="llama3.1:8b",
                                   local_endpoint="http://127.0.0.1:11434"))
    trial = expand_trials(cfg)[0]
    manifest = manifests.build_trial_manifest(cfg, trial, "r1", [], dry_run=False)
    assert manifest.dry_run is False and manifest.engine["engine"] == "ollama"


def test_some_failed_requests_exit_3_and_every_phase_is_recorded(tmp_path) -> None:
    cfg = write_config(tmp_path, local_engine="dry_run")
    queue = tmp_path / "queue"
    out = producer(["run", "--config", str(cfg), "--workers", "1"], queue, EXCELLENCE_FAULTS="permanent=0.5")
    assert out.returncode == SOME_FAILED, out.stdout + out.stderr
    run_id = run_id_of(queue)
    with ledger(queue) as conn:
        states = dict(conn.execute("select state, count(*) from requests group by state").fetchall())
    assert states.get("done") and states.get("failed") and set(states) == {"done", "failed"}
    assert f"--resume {run_id} --retry-failed" in out.stdout
    phases = _json(tmp_path / "experiments" / f"run_{run_id}" / "run_state.json")["phases"]
    assert {p: v["status"] for p, v in phases.items()} == {
        "prepare": "done", "build": "done", "submit": "skipped", "poll": "skipped", "parse": "done",
        "score": "done", "stats": "done", "costs": "done", "report": "done",
    }


def test_every_request_failed_exits_4(tmp_path) -> None:
    cfg = write_config(tmp_path, local_engine="dry_run")
    queue = tmp_path / "queue"
    out = producer(["run", "--config", str(cfg), "--workers", "1"], queue, EXCELLENCE_FAULTS="permanent=1.0")
    assert out.returncode == ALL_FAILED, out.stdout + out.stderr
    assert "done: 0 results, 8 failed" in out.stdout


def _slow_run(tmp_path: Path) -> tuple[subprocess.Popen, Path, str]:
    """A run whose requests wait in retry backoff: the worker is busy and nothing finishes for a minute."""
    cfg = write_config(tmp_path, local_engine="dry_run", max_retries=5, retry_backoff_s=60.0)
    queue = tmp_path / "queue"
    proc = popen(["-m", "producer", "run", "--config", str(cfg), "--workers", "1"], queue,
                 EXCELLENCE_FAULTS="transient=1.0,transient_tries=100")

    def busy() -> bool:
        try:
            with ledger(queue) as conn:
                return conn.execute("select count(*) from requests where state = 'running'").fetchone()[0] > 0
        except Exception:  # noqa: BLE001 - the ledger is not there yet
            return False

    wait_for(busy, 120, "a request in flight")
    return proc, queue, run_id_of(queue)


def _assert_stalled(queue: Path, run_id: str) -> None:
    st = json.loads(producer(["status", "--run-id", run_id, "--json"], queue).stdout)
    assert st["state"] == "stalled" and st["workers"] == [] and st["eta_s"] is None
    text = producer(["status", "--run-id", run_id], queue).stdout
    since = time.strftime("%H:%M", time.localtime(st["stalled_since"]))
    assert "state stalled" in text and f"stalled: no live worker since {since}" in text, text
    assert f"resume with: python -m producer run --resume {run_id}" in text
    assert "state active" not in text and "ETA -" in text


def test_status_after_ctrl_c_is_stalled_and_run_exits_130(tmp_path) -> None:
    proc, queue, run_id = _slow_run(tmp_path)
    out = stop_process(proc)
    assert proc.returncode == INTERRUPTED, out
    assert f"resume with: python -m producer run --resume {run_id}" in out
    _assert_stalled(queue, run_id)


def test_status_after_a_crash_is_stalled_at_once(tmp_path) -> None:
    import psutil

    proc, queue, run_id = _slow_run(tmp_path)
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in tree:  # kill -9 of the whole run: no worker gets to say goodbye
        p.kill()
    psutil.wait_procs(tree, timeout=30)
    proc.communicate()
    _assert_stalled(queue, run_id)  # within the heartbeat window: dead pids are not live workers


def _without_root_override() -> list[str]:
    """Root ignores a read-only folder; drop that privilege (setpriv) so chmod means what it says."""
    if sys.platform == "win32" or os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be simulated")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", caps, "--inh-caps", caps, "--"]


@pytest.mark.skipif(sys.platform == "win32", reason="chmod cannot make a Windows folder read-only")
def test_export_to_a_read_only_results_folder_stops_with_the_reason(tmp_path) -> None:
    cfg = write_config(tmp_path, local_engine="dry_run")
    queue = tmp_path / "queue"
    out = producer(["enqueue", "--config", str(cfg)], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = run_id_of(queue)
    results = _trial_results(tmp_path, run_id)
    cmd = [*_without_root_override(), sys.executable, *PY_FLAGS, "-m", "producer", "run", "--config", str(cfg),
           "--workers", "1"]
    results.chmod(0o555)
    try:
        try:
            run = subprocess.run(cmd, cwd=ROOT, env=env_for(queue), capture_output=True, text=True,
                                 encoding="utf-8", timeout=120)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"run waited for ever on a failing export: {exc.stdout}")
    finally:
        results.chmod(0o755)
    text = run.stdout + run.stderr
    assert run.returncode == NOT_WRITTEN, text
    assert f"run {run_id} stopped: export of trial {results.parent.name} failed: PermissionError" in run.stdout
    assert "Traceback" not in text
    st = json.loads(producer(["status", "--run-id", run_id, "--json"], queue).stdout)
    assert st["state"] == "stopped" and st["stop_reason"].startswith("export of trial")
    assert st["trials"][results.parent.name]["export"] == "failed"
    assert "stopped: export of trial" in producer(["status", "--run-id", run_id], queue).stdout
    state = _json(results.parents[1] / "run_state.json")
    assert state["phases"]["parse"]["status"] == "failed" and "PermissionError" in state["phases"]["parse"]["error"]

    again = producer(["run", "--resume", run_id, "--workers", "1"], queue)  # the folder is writable again
    assert again.returncode == 0, again.stdout + again.stderr
    assert (results / "predictions.csv").is_file()
    assert _json(results.parents[1] / "run_state.json")["phases"]["parse"]["status"] == "done"


def test_live_scoring_that_cannot_read_its_items_does_not_loop(tmp_path, monkeypatch) -> None:
    """Live scores are advisory: a chunk whose items cannot be read is marked scored without numbers,
    with one log line, instead of raising in every reconcile (a retry loop of tracebacks)."""
    cfg = write_config(tmp_path, local_engine="dry_run")
    queue = tmp_path / "queue"
    assert producer(["run", "--config", str(cfg), "--workers", "1"], queue).returncode == 0
    run_id = run_id_of(queue)
    shutil.rmtree(tmp_path / "experiments" / f"run_{run_id}" / "prepared")  # the run's frozen items are gone
    with ledger(queue) as conn:
        conn.execute("update requests set scored = 0, em = null")
    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(queue))
    from producer.ledger.db import close_all, connect
    from producer.ledger.queries import unscored_chunks
    from workers import scoring_task

    scoring_task._items.cache_clear()
    try:
        chunks = sorted({c for _, c in unscored_chunks(connect(), run_id)})
        assert chunks
        for chunk in chunks:
            assert scoring_task.score_chunk_rows(run_id, chunk) > 0
        assert unscored_chunks(connect(), run_id) == []
    finally:
        close_all()


@pytest.mark.unit
def test_readme_lists_every_exit_code() -> None:
    from producer.host import exit_codes

    assert (STOPPED, SOME_FAILED, ALL_FAILED, NOT_WRITTEN, INTERRUPTED) == (
        exit_codes.STOPPED, exit_codes.SOME_FAILED, exit_codes.ALL_FAILED, exit_codes.NOT_WRITTEN,
        exit_codes.INTERRUPTED)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code, meaning in exit_codes.TABLE:
        assert f"| {code} | {meaning} |" in readme
    assert len({code for code, _ in exit_codes.TABLE}) == len(exit_codes.TABLE)
