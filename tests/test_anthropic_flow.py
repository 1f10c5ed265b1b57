"""The whole Anthropic batch flow through the real queue: ``producer run`` in a subprocess (spawned worker
pool, SQLite ledger, Huey queue) against the fake Anthropic server over HTTP, the official SDK in between.
A kill -9 at each step (before the create leaves, after it was made but before its id was recorded,
while polling, while downloading results) and ``run --resume`` leave one batch per part and one result
per request; a canary key appears in nothing the run writes or prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.contract import PREDICTIONS_COLUMNS
from tests.support.anthropic_runs import KEY, MODEL, PARTS, TOTAL, an_config, an_env
from tests.support.cli import kill_tree
from tests.support.fireworks_runs import read_predictions_csv, run_dir_of, run_producer
from tests.support.paths import ROOT
from tests.support.servers.fake_anthropic_batch import FakeAnthropicServer, FakeState, Fault


@pytest.fixture
def server():
    srv = FakeAnthropicServer(FakeState(api_key=KEY)).start()
    yield srv
    srv.stop()


def _no_key_anywhere(*texts: str, folders: tuple[Path, ...], key: str = KEY) -> None:
    for text in texts:
        assert key not in text
    for folder in folders:
        for p in folder.rglob("*"):
            if p.is_file():
                assert key.encode() not in p.read_bytes(), p


def _one_batch_per_part(srv: FakeAnthropicServer) -> None:
    """PARTS batches, no two with a request in common, every request of the run in one of them."""
    sent = [sorted(r["custom_id"] for r in reqs) for reqs in srv.state.requests.values()]
    flat = [cid for ids in sent for cid in ids]
    assert len(sent) == PARTS and len(flat) == len(set(flat)) == TOTAL, sent


def test_anthropic_run_gives_predictions_report_and_costs(tmp_path, server):
    server.state.faults += [Fault("create_batch", 429, 1, "rate limited", retry_after="0.2"),
                            Fault("get_batch", 529, 1, "Overloaded"), Fault("get_batch", 500, 1)]
    cfg = an_config(tmp_path)
    env = an_env(tmp_path, server)
    plan = run_producer(tmp_path, env, "plan", "--config", str(cfg))
    assert f"backend: Anthropic batch API, model {MODEL}" in plan.stdout
    assert "estimated cost: up to $" in plan.stdout and "(Anthropic batch," in plan.stdout
    assert f"Anthropic API base: {server.base_url} (from environment" in plan.stdout
    assert not server.state.batches  # plan pays for nothing
    proc = run_producer(tmp_path, env, "run", "--config", str(cfg), "-w", "1", "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "retrying" in proc.stdout + proc.stderr
    _one_batch_per_part(server)
    run = run_dir_of(tmp_path)
    (res,) = [p / "results" for p in run.iterdir() if (p / "results").is_dir()]
    header, rows = read_predictions_csv(res / "predictions.csv")
    assert header == list(PREDICTIONS_COLUMNS) and len(rows) == TOTAL
    assert len({r["custom_id"] for r in rows}) == TOTAL and all(r["prompt_tokens"] and r["response_text"] for r in rows)
    assert {r["finish_reason"] for r in rows} == {"stop"} and all(r["request_id"].startswith("msg_") for r in rows)
    raw = [json.loads(x) for x in (res / "raw_results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(r["engine"]["backend"] == "anthropic" for r in raw)
    treated = [r for r in raw if "|treatment|" in r["custom_id"]]
    assert all("|control|" in r["custom_id"] for r in raw if not r["engine"].get("cached_tokens")
               and not r["engine"].get("cache_write_tokens"))  # the long treatment prompt is cached
    writes = sum(r["engine"].get("cache_write_tokens", 0) for r in treated)
    reads = sum(r["engine"].get("cached_tokens") or 0 for r in treated)
    assert writes > 0 and reads > writes
    manifest = json.loads((res / "trial_manifest.json").read_text(encoding="utf-8"))
    assert manifest["engine"]["seed"].startswith("not sent") and manifest["trial"]["temps"] == ["0.7"]
    costs = json.loads((res / "costs.json").read_text(encoding="utf-8"))
    assert costs["backend"] == "anthropic" and costs["usd_kind"] == "billed_estimate" and costs["usd"] > 0
    assert costs["cached_prompt_tokens"] == reads and costs["cache_write_tokens"] == writes
    price = costs["pricing"]
    assert (price["input_per_mtok"], price["cached_input_multiplier"], price["cache_write_multiplier"]) == (3.0, 0.1, 1.25)
    prompt, completion = costs["prompt_tokens"], costs["completion_tokens"]
    expect = (prompt - reads - writes + 0.1 * reads + 1.25 * writes) * 3.0 / 1e6 + completion * 15.0 / 1e6
    assert costs["usd"] == pytest.approx(expect * 0.5)
    reported = costs["reported_by_provider"]
    assert (reported["input_tokens"], reported["cached_input_tokens"], reported["cache_write_tokens"]) == (prompt, reads, writes)
    assert list(run.glob("*/reports/report.html"))
    assert len(list((run / "anthropic" / "downloads").glob("part-*/results.jsonl"))) == PARTS
    status = run_producer(tmp_path, env, "status")
    assert "anthropic jobs:" in status.stdout and "ended" in status.stdout
    _no_key_anywhere(proc.stdout, proc.stderr, plan.stdout, status.stdout, folders=(run, tmp_path / "queue"))


def test_plan_refuses_a_temperature_above_1_in_one_line(tmp_path, server):
    cfg = an_config(tmp_path, temps=[0.7, 1.5], samples_per_item={"0.7": 1, "1.5": 1})
    plan = run_producer(tmp_path, an_env(tmp_path, server), "plan", "--config", str(cfg))
    assert plan.returncode != 0 and "Traceback" not in plan.stderr
    (line,) = [ln for ln in plan.stderr.splitlines() if ln.strip()]
    assert "temps: the anthropic backend takes temperatures 0.0..1.0" in line and "not 1.5" in line


def test_errored_and_expired_requests_then_retry_failed(tmp_path, server):
    server.state.expire_after = 1  # each batch answers its first request only; the rest expire
    cfg = an_config(tmp_path)
    env = an_env(tmp_path, server)
    proc = run_producer(tmp_path, env, "run", "--config", str(cfg), "-w", "1")
    assert proc.returncode != 0, proc.stdout + proc.stderr
    (pred,) = run_dir_of(tmp_path).glob("*/results/predictions.csv")
    assert len(read_predictions_csv(pred)[1]) == PARTS  # what each batch answered is kept
    assert (pred.parent / "errors.jsonl").read_text(encoding="utf-8").count("expired") == TOTAL - PARTS
    first = set(server.state.batches)
    server.state.expire_after = None
    run_id = run_dir_of(tmp_path).name[len("run_"):]
    again = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "--retry-failed", "-w", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    resent = [r["custom_id"] for b, reqs in server.state.requests.items() if b not in first for r in reqs]
    assert len(resent) == len(set(resent)) == TOTAL - PARTS  # only requests that never came back
    assert len(read_predictions_csv(pred)[1]) == TOTAL


@pytest.mark.parametrize("step", ["before_create", "create_batch", "poll", "results"])
def test_kill_9_at_each_step_then_resume_leaves_one_batch_per_part(tmp_path, server, step):
    """before_create: the intent is recorded, the create never acted; create_batch: the batch exists but
    its id was never heard; poll: batches in progress; results: killed while downloading results."""
    if step == "poll":
        server.state.hold = True
    elif step == "before_create":
        server.state.stall = {"create_batch"}
    else:
        server.state.hang = {step}
    wait_for = "create_batch" if step == "before_create" else step
    cfg = an_config(tmp_path)
    env = an_env(tmp_path, server)
    proc = subprocess.Popen([sys.executable, "-m", "producer", "run", "--config", str(cfg), "-w", "1"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while not (server.state.hung.get(wait_for) or (step == "poll" and len(server.state.batches) == PARTS)):
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
    assert len(server.state.batches) == {"before_create": 0, "create_batch": 1}.get(step, PARTS)
    server.state.hang, server.state.stall, server.state.hold = set(), set(), False
    server.state.release.set()
    run_id = run_dir_of(tmp_path).name[len("run_"):]
    again = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "-w", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    _one_batch_per_part(server)
    (pred,) = run_dir_of(tmp_path).glob("*/results/predictions.csv")
    rows = read_predictions_csv(pred)[1]
    assert len(rows) == len({r["custom_id"] for r in rows}) == TOTAL
    _no_key_anywhere(out, again.stdout, again.stderr, folders=(run_dir_of(tmp_path), tmp_path / "queue"))


def test_a_wrong_key_stops_with_one_line_and_a_missing_sdk_is_one_line(tmp_path, server):
    cfg = str(an_config(tmp_path))
    env = {**an_env(tmp_path, server), "ANTHROPIC_API_KEY": "sk-ant-api03-WRONG-canary-55aa55aa55aa"}
    run = run_producer(tmp_path, env, "run", "--config", cfg, "-w", "1")
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert not server.state.batches  # 401 is not retried: each part fails with the service's words
    (errors,) = run_dir_of(tmp_path).glob("*/results/errors.jsonl")
    text = errors.read_text(encoding="utf-8")
    assert text.count("HTTP 401: invalid x-api-key") == TOTAL
    _no_key_anywhere(run.stdout, run.stderr, folders=(run_dir_of(tmp_path), tmp_path / "queue"),
                     key="sk-ant-api03-WRONG-canary-55aa55aa55aa")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(EXCELLENCE_QUEUE_DIR=str(tmp_path / "queue2"), PYTHONPATH=str(ROOT), ANTHROPIC_API_KEY=KEY)
    no_sdk = subprocess.run([sys.executable, "-c", "import runpy, sys; sys.modules['anthropic'] = None; "
                             "sys.argv = ['producer', 'run', '--config', sys.argv[1]]; "
                             "runpy.run_module('producer', run_name='__main__')", cfg],
                            cwd=tmp_path, env=env, capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert no_sdk.returncode != 0 and "Traceback" not in no_sdk.stderr
    assert "pip install .[anthropic]" in no_sdk.stderr and len(no_sdk.stderr.strip().splitlines()) == 1
    assert KEY not in no_sdk.stderr + no_sdk.stdout


def test_stop_cancel_batches_cancels_each_batch_once_and_retry_failed_sends_the_rows_again(tmp_path):
    srv = FakeAnthropicServer(FakeState(api_key=KEY, hold=True)).start()
    try:
        cfg, env = an_config(tmp_path), an_env(tmp_path, srv)
        proc = subprocess.Popen([sys.executable, "-m", "producer", "run", "--config", str(cfg), "-w", "1"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while len(srv.state.batches) < PARTS:
            assert time.monotonic() < deadline and proc.poll() is None, "the batches never started"
            time.sleep(0.05)
        run_id = run_dir_of(tmp_path).name[len("run_"):]
        stop = run_producer(tmp_path, env, "stop", "--run-id", run_id, "--cancel-batches")
        assert stop.returncode == 0 and stop.stdout.count("canceling") == PARTS, stop.stdout + stop.stderr
        proc.communicate(timeout=90)
        again = run_producer(tmp_path, env, "stop", "--run-id", run_id, "--cancel-batches")
        assert again.returncode == 0 and srv.state.counts.get("cancel_batch", 0) == PARTS  # nothing twice
        srv.state.hold = False
        resumed = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "-w", "1")
        assert resumed.returncode != 0, resumed.stdout + resumed.stderr
        (pred,) = run_dir_of(tmp_path).glob("*/results/predictions.csv")
        assert (pred.parent / "errors.jsonl").read_text(encoding="utf-8").count("canceled") == TOTAL
        retried = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "--retry-failed",
                               "-w", "1")
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert len(read_predictions_csv(pred)[1]) == TOTAL and len(srv.state.batches) == 2 * PARTS
        _no_key_anywhere(stop.stdout, resumed.stdout, retried.stdout, folders=(run_dir_of(tmp_path), tmp_path / "queue"))
    finally:
        srv.stop()
