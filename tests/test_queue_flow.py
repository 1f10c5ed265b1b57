"""The queue end to end with the dry_run engine (no model): run, idempotent enqueue, huey_consumer,
stop/resume, engine faults. Real processes, real SQLite; the model path is in test_pool_realmodel.py."""

from __future__ import annotations

import json
import sys

import pytest

from config.contract import PREDICTIONS_COLUMNS
from tests.support.queue_runs import (
    count_state,
    expected_ids,
    popen,
    producer,
    read_jsonl,
    read_predictions,
    results_dir,
    run_id_of,
    run_state,
    stop_process,
    wait_for,
    write_config,
)


def test_run_dry_run_completes_and_enqueue_is_idempotent(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run")
    queue = tmp_path / "queue"
    first = producer(["enqueue", "--config", str(cfg), "--dry-run"], queue)
    assert first.returncode == 0, first.stderr
    run_id = run_id_of(queue)
    assert f"run {run_id} registered: 8 requests" in first.stdout
    again = producer(["enqueue", "--config", str(cfg), "--dry-run"], queue)
    assert again.returncode == 0, again.stderr
    assert f"run {run_id} resumed" in again.stdout and "0 chunk messages queued" in again.stdout

    done = producer(["run", "--config", str(cfg), "--dry-run", "--workers", "2"], queue)
    assert done.returncode == 0, done.stdout + done.stderr
    assert run_id_of(queue) == run_id  # the unfinished run of the same config is continued
    assert "done: 8 results, 0 failed" in done.stdout
    rdir = results_dir(tmp_path, run_id)
    columns, rows = read_predictions(rdir / "predictions.csv")
    assert columns == list(PREDICTIONS_COLUMNS)
    assert sorted(r["custom_id"] for r in rows) == expected_ids(queue, run_id)
    assert all(r["response_text"] and r["total_tokens"] for r in rows)
    raw = read_jsonl(rdir / "raw_results.jsonl")
    assert len(raw) == 8 and raw[0]["response"]["body"]["choices"][0]["message"]["content"]
    assert read_jsonl(rdir / "errors.jsonl") == []
    manifest = json.loads((rdir / "trial_manifest.json").read_text(encoding="utf-8"))
    assert manifest["stage_status"]["generated"]["status"] == "done"
    assert manifest["stage_status"]["parsed"]["status"] == "done"

    status = producer(["status", "--run-id", run_id, "--json"], queue)
    st = json.loads(status.stdout)
    assert st["state"] == "done" and st["totals"]["done"] == 8 and st["totals"]["failed"] == 0
    assert set(st["trials"][rdir.parent.name]["conditions"]) == {"control", "treatment"}


def test_engine_faults_retry_transient_and_record_permanent(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run", sizes={"squad_v2": 6, "triviaqa": 4, "nq_open": 4})
    queue = tmp_path / "queue"
    faults = "transient=0.4,permanent=0.15,transient_tries=2"  # max_retries=2: 2 failures then success
    out = producer(["run", "--config", str(cfg), "--workers", "1"], queue, EXCELLENCE_FAULTS=faults)
    assert out.returncode == 3, out.stdout + out.stderr  # finished with failed requests (producer/host/exit_codes.py)
    run_id = run_id_of(queue)
    failed = count_state(queue, run_id, "failed")
    done = count_state(queue, run_id, "done")
    assert failed > 0 and done + failed == 28
    from tests.support.queue_runs import ledger

    with ledger(queue) as conn:
        retried = conn.execute("select count(*) from requests where state = 'done' and attempts = 3").fetchone()[0]
        errors = {r[0] for r in conn.execute("select last_error from requests where state = 'failed'")}
    assert retried > 0  # transient failures were retried to success
    assert errors == {"injected permanent fault: request rejected"}
    rdir = results_dir(tmp_path, run_id)
    _, rows = read_predictions(rdir / "predictions.csv")
    assert len(rows) == done  # failures are not rows (never scored as wrong)
    errs = read_jsonl(rdir / "errors.jsonl")
    assert len(errs) == failed and errs[0]["error"] == "injected permanent fault: request rejected"
    st = json.loads(producer(["status", "--json"], queue).stdout)
    assert st["totals"]["failed"] == failed
    assert st["recent_errors"][0]["error"] == "injected permanent fault: request rejected"
    text = producer(["status"], queue).stdout
    assert f"failed {failed}" in text and "injected permanent fault" in text


def test_stop_then_resume_completes(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run")
    queue = tmp_path / "queue"
    assert producer(["enqueue", "--config", str(cfg), "--dry-run"], queue).returncode == 0
    run_id = run_id_of(queue)
    stopped = producer(["stop", "--run-id", run_id], queue)
    assert stopped.returncode == 0 and "stop requested" in stopped.stdout
    assert count_state(queue, run_id, "pending") == 8  # nothing left queued for workers
    state_file = tmp_path / "experiments" / f"run_{run_id}" / "run_state.json"
    assert json.loads(state_file.read_text(encoding="utf-8"))["stop_requested"] is True
    pool = popen(["-m", "workers", "-w", "1"], queue)
    try:
        import time

        time.sleep(4)  # workers see only a stopped run's stale messages: nothing may run
        assert count_state(queue, run_id, "done") == 0
    finally:
        stop_process(pool)
    resumed = producer(["run", "--resume", run_id, "--workers", "1"], queue)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert run_state(queue, run_id) == "done" and count_state(queue, run_id, "done") == 8
    assert json.loads(state_file.read_text(encoding="utf-8"))["stop_requested"] is False


@pytest.mark.skipif(sys.platform == "win32", reason="huey refuses process workers on Windows (docs/architecture.md fact 2)")
def test_huey_consumer_process_mode_completes_a_run(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run")
    queue = tmp_path / "queue"
    assert producer(["enqueue", "--config", str(cfg), "--dry-run"], queue).returncode == 0
    run_id = run_id_of(queue)
    import shutil
    from pathlib import Path

    consumer = shutil.which("huey_consumer", path=str(Path(sys.executable).parent))
    assert consumer
    proc = popen([consumer, "producer.huey", "-w", "2", "-k", "process"], queue)
    try:
        wait_for(lambda: run_state(queue, run_id) == "done", 90, "the run to finish under huey_consumer")
    finally:
        out = stop_process(proc)
    assert "Traceback" not in out, out
    _, rows = read_predictions(results_dir(tmp_path, run_id) / "predictions.csv")
    assert sorted(r["custom_id"] for r in rows) == expected_ids(queue, run_id)
