"""The whole OpenAI batch flow through the real queue: ``producer run`` in a subprocess (spawned worker
pool, SQLite ledger, Huey queue) against the fake OpenAI server over HTTP, the official SDK in between.
A kill -9 at each step (upload, create, poll, download) and ``run --resume`` leave one batch per part
and one result per request; a canary key appears in nothing the run writes or prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.contract import PREDICTIONS_COLUMNS
from producer.host.exit_codes import SOME_FAILED
from tests.support.cli import kill_tree
from tests.support.fireworks_runs import read_predictions_csv, run_dir_of, run_producer
from tests.support.openai_runs import KEY, PARTS, TOTAL, oa_config, oa_env
from tests.support.paths import ROOT
from tests.support.servers.fake_openai_batch import FakeOpenAIServer, FakeState, Fault


@pytest.fixture
def server():
    srv = FakeOpenAIServer(FakeState(api_key=KEY)).start()
    yield srv
    srv.stop()


def _no_key_anywhere(*texts: str, folders: tuple[Path, ...]) -> None:
    for text in texts:
        assert KEY not in text
    for folder in folders:
        for p in folder.rglob("*"):
            if p.is_file():
                assert KEY.encode() not in p.read_bytes(), p


def _one_batch_per_part(srv: FakeOpenAIServer) -> None:
    jobs = [(b.get("metadata") or {}).get("ee_job_id") for b in srv.state.batches.values()]
    assert len(jobs) == len(set(jobs)) == PARTS, jobs


def test_openai_run_gives_predictions_report_and_costs(tmp_path, server):
    server.state.faults += [Fault("create_batch", 429, 1, "Rate limit reached", retry_after="0.2"),
                            Fault("get_batch", 500, 1)]
    cfg = oa_config(tmp_path)
    env = oa_env(tmp_path, server)
    plan = run_producer(tmp_path, env, "plan", "--config", str(cfg))
    assert "backend: OpenAI batch API, model gpt-4o-mini" in plan.stdout
    assert "estimated cost: up to $" in plan.stdout and "(OpenAI batch," in plan.stdout
    assert f"OpenAI API base: {server.base_url} (from environment" in plan.stdout
    first = sorted(server.state.batches)
    server.state.fail_rows = set()
    proc = run_producer(tmp_path, env, "run", "--config", str(cfg), "-w", "1", "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "retrying" in proc.stdout + proc.stderr and not first
    _one_batch_per_part(server)
    run = run_dir_of(tmp_path)
    (res,) = [p / "results" for p in run.iterdir() if (p / "results").is_dir()]
    header, rows = read_predictions_csv(res / "predictions.csv")
    assert header == list(PREDICTIONS_COLUMNS) and len(rows) == TOTAL
    assert len({r["custom_id"] for r in rows}) == TOTAL and all(r["prompt_tokens"] for r in rows)
    raw = [json.loads(x) for x in (res / "raw_results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(r["engine"]["backend"] == "openai" and r["engine"]["cached_tokens"] == 2 for r in raw)
    costs = json.loads((res / "costs.json").read_text(encoding="utf-8"))
    assert costs["backend"] == "openai" and costs["usd_kind"] == "billed_estimate" and costs["usd"] > 0
    assert costs["pricing"]["input_per_mtok"] == 0.15 and costs["cached_prompt_tokens"] == 2 * TOTAL
    assert list(run.glob("*/reports/report.html"))
    assert len(list((run / "openai" / "downloads").glob("part-*/output.jsonl"))) == PARTS
    status = run_producer(tmp_path, env, "status")
    assert "completed" in status.stdout
    _no_key_anywhere(proc.stdout, proc.stderr, plan.stdout, status.stdout, folders=(run, tmp_path / "queue"))


def test_failed_rows_and_an_expired_batch_then_retry_failed(tmp_path, server):
    server.state.final_status, server.state.reached = "expired", 1  # each batch answers its first row only
    cfg = oa_config(tmp_path)
    env = oa_env(tmp_path, server)
    proc = run_producer(tmp_path, env, "run", "--config", str(cfg), "-w", "1")
    assert proc.returncode == SOME_FAILED, proc.stdout + proc.stderr
    (pred,) = run_dir_of(tmp_path).glob("*/results/predictions.csv")
    assert len(read_predictions_csv(pred)[1]) == PARTS  # the partial output is kept
    errors = (pred.parent / "errors.jsonl").read_text(encoding="utf-8")
    assert errors.count("batch_expired") == TOTAL - PARTS
    sent = {b["input_file_id"] for b in server.state.batches.values()}
    server.state.final_status, server.state.reached = "completed", None
    run_id = run_dir_of(tmp_path).name[len("run_"):]
    again = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "--retry-failed", "-w", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    new_inputs = [server.state.contents[b["input_file_id"]] for b in server.state.batches.values()
                  if b["input_file_id"] not in sent]
    resent = [json.loads(x)["custom_id"] for data in new_inputs for x in data.decode().splitlines()]
    assert len(resent) == len(set(resent)) == TOTAL - PARTS  # only rows that never came back
    assert len(read_predictions_csv(pred)[1]) == TOTAL


@pytest.mark.parametrize("step", ["upload_file", "create_batch", "poll", "file_content"])
def test_kill_9_at_each_step_then_resume_leaves_one_batch_per_part(tmp_path, server, step):
    """upload_file: killed before create; create_batch: the batch exists but its id was never heard;
    poll: batches in progress; file_content: killed while downloading output."""
    if step == "poll":
        server.state.hold = True
    else:
        server.state.hang = {step}
    cfg = oa_config(tmp_path)
    env = oa_env(tmp_path, server)
    proc = subprocess.Popen([sys.executable, "-m", "producer", "run", "--config", str(cfg), "-w", "1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while not (server.state.hung.get(step) or (step == "poll" and len(server.state.batches) == PARTS)):
            assert time.monotonic() < deadline and proc.poll() is None, f"the run never reached {step}"
            time.sleep(0.05)
        if step == "poll":
            polls = server.state.counts.get("get_batch", 0)
            while server.state.counts.get("get_batch", 0) < polls + 2:  # the pool is polling batches in progress
                assert time.monotonic() < deadline and proc.poll() is None, "the run never polled"
                time.sleep(0.05)
    finally:
        kill_tree(proc)
    out = proc.stdout.read().decode("utf-8", "replace") if proc.stdout else ""
    server.state.hang, server.state.hold = set(), False
    server.state.release.set()
    run_id = run_dir_of(tmp_path).name[len("run_"):]
    again = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "-w", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    _one_batch_per_part(server)
    (pred,) = run_dir_of(tmp_path).glob("*/results/predictions.csv")
    rows = read_predictions_csv(pred)[1]
    assert len(rows) == len({r["custom_id"] for r in rows}) == TOTAL
    _no_key_anywhere(out, again.stdout, again.stderr, folders=(run_dir_of(tmp_path), tmp_path / "queue"))


def test_doctor_and_plan_refuse_a_clear_text_base_and_a_missing_sdk_is_one_line(tmp_path):
    cfg = str(oa_config(tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "FIREWORKS_"))}
    env.update(EXCELLENCE_QUEUE_DIR=str(tmp_path / "queue"), PYTHONPATH=str(ROOT))
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={KEY}\nOPENAI_BASE_URL=http://192.0.2.10:8080/v1\n",
                                   encoding="utf-8")
    doctor = run_producer(tmp_path, env, "doctor", "--config", cfg)
    line = next(ln for ln in doctor.stdout.splitlines() if "openai api base" in ln)
    assert line.startswith("[FAIL]") and "OPENAI_BASE_URL (from .env) is http://192.0.2.10:8080" in line
    plan = run_producer(tmp_path, env, "plan", "--config", cfg)
    assert "OpenAI API base from .env" in plan.stdout and "REFUSED" in plan.stdout
    run = run_producer(tmp_path, env, "run", "--config", cfg, "-w", "1")
    assert run.returncode != 0 and "OPENAI_BASE_URL (from .env)" in run.stderr and "Traceback" not in run.stderr
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={KEY}\n", encoding="utf-8")
    no_sdk = subprocess.run([sys.executable, "-c", "import runpy, sys; sys.modules['openai'] = None; "
                             "sys.argv = ['producer', 'run', '--config', sys.argv[1]]; "
                             "runpy.run_module('producer', run_name='__main__')", cfg],
                            cwd=tmp_path, env=env, capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert no_sdk.returncode != 0 and "Traceback" not in no_sdk.stderr
    assert "pip install .[openai]" in no_sdk.stderr and len(no_sdk.stderr.strip().splitlines()) == 1
    _no_key_anywhere(doctor.stdout, doctor.stderr, plan.stdout, run.stdout, run.stderr, no_sdk.stderr,
                     folders=(tmp_path / "queue",) if (tmp_path / "queue").exists() else ())
