"""The whole Fireworks batch flow through the real queue: ``producer run`` in a subprocess (spawned
worker pool, SQLite ledger and Huey queue in a temp folder) against the fake Fireworks server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from config.contract import PREDICTIONS_COLUMNS
from producer.host.exit_codes import ALL_FAILED, SOME_FAILED
from tests.support.cli import kill_tree
from tests.support.fireworks_runs import (
    KEY,
    SIZES,
    fw_config,
    fw_env,
    read_predictions_csv,
    run_dir_of,
    run_producer,
)
from tests.support.offline_config import offline_config_dict
from tests.support.servers.fake_fireworks import FakeFireworksServer, FakeState, Fault


@pytest.fixture
def server():
    srv = FakeFireworksServer(FakeState(api_key=KEY)).start()
    yield srv
    srv.stop()


def _no_key_anywhere(folder: Path, *texts: str) -> None:
    for text in texts:
        assert KEY not in text
    for p in folder.rglob("*"):
        if p.is_file():
            assert KEY.encode() not in p.read_bytes(), p


def test_fireworks_run_matches_local_schema(tmp_path, server):
    server.state.faults += [Fault("create_job", 429, 1), Fault("get_job", 500, 1)]
    server.state.fail_index = {0}  # the first row of every job goes to the error file
    cfg = fw_config(tmp_path)
    proc = run_producer(tmp_path, fw_env(tmp_path, server), "run", "--config", str(cfg), "-w", "1", "-v")
    assert proc.returncode == SOME_FAILED, proc.stdout + proc.stderr
    assert "retrying" in proc.stderr + proc.stdout  # verbose logs were captured (and hold no key)
    run = run_dir_of(tmp_path)
    trial_dirs = [p for p in run.iterdir() if (p / "results").is_dir()]
    assert len(trial_dirs) == 1
    res = trial_dirs[0] / "results"
    header, rows = read_predictions_csv(res / "predictions.csv")
    assert header == list(PREDICTIONS_COLUMNS)
    parts = server.state.counts["job_creates"]
    total = 2 * sum(SIZES.values())  # two conditions, one temperature, one sample
    errors = [json.loads(line) for line in (res / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(errors) == parts and len(rows) == total - parts  # error-file rows: failed, never results
    assert all("row failed" in e["error"] for e in errors)
    assert all(r["prompt_tokens"] and r["response_text"] for r in rows)
    assert server.state.counts["create_job"] == parts + 1  # the 429 was retried once
    assert server.state.signed_with_auth == 0
    raw = [json.loads(x) for x in (res / "raw_results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(r["engine"]["backend"] == "fireworks" and r["engine"]["cached_tokens"] == 3 for r in raw)
    assert all(r["response"]["body"]["usage"]["prompt_tokens_details"] == {"cached_tokens": 3} for r in raw)
    manifest = json.loads((res / "trial_manifest.json").read_text(encoding="utf-8"))
    assert manifest["stage_status"]["downloaded"]["status"] == "done"
    phases = json.loads((run / "run_state.json").read_text(encoding="utf-8"))["phases"]
    assert phases["submit"]["status"] == "done" and phases["poll"]["status"] == "done"
    status = run_producer(tmp_path, fw_env(tmp_path, server), "status")
    assert "fireworks jobs" in status.stdout and "COMPLETED" in status.stdout
    _no_key_anywhere(run, proc.stdout, proc.stderr, status.stdout)
    _no_key_anywhere(tmp_path / "queue")

    # the same items on the local dry-run engine give predictions.csv with the same columns and custom_ids
    local_tmp = tmp_path / "local"
    local_cfg = local_tmp / "local.yaml"
    local_tmp.mkdir()
    local_cfg.write_text(yaml.safe_dump(offline_config_dict(local_tmp, sizes=SIZES)), encoding="utf-8")
    lproc = run_producer(local_tmp, fw_env(local_tmp, None), "run", "--config", str(local_cfg), "-w", "1")
    assert lproc.returncode == 0, lproc.stdout + lproc.stderr
    (lres,) = (local_tmp / "experiments").glob("run_*/*/results/predictions.csv")
    lheader, lrows = read_predictions_csv(lres)
    assert lheader == header
    failed_ids = {e["custom_id"] for e in errors}
    assert {r["custom_id"] for r in lrows} == {r["custom_id"] for r in rows} | failed_ids


def test_kill_after_job_creation_then_resume_creates_no_second_job(tmp_path, server):
    server.state.hold_jobs = True
    cfg = fw_config(tmp_path)
    env = fw_env(tmp_path, server)
    proc = subprocess.Popen([sys.executable, "-m", "producer", "run", "--config", str(cfg), "-w", "1"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        expected_parts = 4  # control/treatment x open/closed
        deadline = time.monotonic() + 90
        while server.state.counts.get("job_creates", 0) < expected_parts:
            assert time.monotonic() < deadline and proc.poll() is None, "jobs were not created"
            time.sleep(0.1)
        time.sleep(0.5)  # the pool is polling RUNNING jobs now
    finally:
        kill_tree(proc)
    creates = dict(server.state.counts)
    run_id = run_dir_of(tmp_path).name[len("run_"):]
    server.state.hold_jobs = False
    out = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "-w", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert server.state.counts["job_creates"] == creates["job_creates"] == expected_parts
    assert server.state.counts["create_dataset"] == creates["create_dataset"]
    (pred,) = run_dir_of(tmp_path).glob("*/results/predictions.csv")
    assert len(read_predictions_csv(pred)[1]) == 2 * sum(SIZES.values())


def test_sweep_uses_each_trials_model_and_shares_controls(tmp_path, server):
    alt = tmp_path / "alt_treatment.txt"
    alt.write_text("Answer only when sure; otherwise say you do not know.", encoding="utf-8")
    base = offline_config_dict(tmp_path)
    psets = {"default": base["prompt_sets"]["default"],
             "alt": {"control": base["prompt_sets"]["default"]["control"], "treatment": str(alt)}}
    cfg = fw_config(tmp_path, prompt_sets=psets, top_p=0.9, top_k=40,
                  max_new_tokens={"closed_book": 12, "open_book": 24},
                  sweep={"models": ["accounts/fireworks/models/model-a", "accounts/fireworks/models/model-b"],
                         "prompt_sets": ["default", "alt"]})
    proc = run_producer(tmp_path, fw_env(tmp_path, server), "run", "--config", str(cfg), "-w", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = run_dir_of(tmp_path)
    trials = sorted(p.name for p in run.iterdir() if (p / "results" / "predictions.csv").is_file())
    assert len(trials) == 4
    jobs = [c["body"] for c in server.state.calls if c["endpoint"] == "create_job"]
    n_items = sum(SIZES.values())
    sent_rows: dict[tuple[str, str], int] = {}
    for job in jobs:
        ds = server.state.datasets[job["inputDatasetId"].split("/")[-1]]
        cond = ds["rows"][0]["custom_id"].split("|")[2]
        sent_rows[(job["model"], cond)] = sent_rows.get((job["model"], cond), 0) + len(ds["rows"])
        params = job["inferenceParameters"]
        assert params["topP"] == 0.9 and params["topK"] == 40 and params["n"] == 1
        types = {r["custom_id"].split("|")[-1] for r in ds["rows"]}
        assert len(types) == 1 and params["maxTokens"] == (24 if types == {"open"} else 12)
        assert all(r["body"]["max_tokens"] == params["maxTokens"] for r in ds["rows"])
    for model in ("accounts/fireworks/models/model-a", "accounts/fireworks/models/model-b"):
        assert sent_rows[(model, "control")] == n_items  # shared: once per model, not once per prompt set
        assert sent_rows[(model, "treatment")] == 2 * n_items  # one per prompt set
    shared = 0
    for t in trials:
        manifest = json.loads((run / t / "results" / "trial_manifest.json").read_text(encoding="utf-8"))
        _, rows = read_predictions_csv(run / t / "results" / "predictions.csv")
        assert len(rows) == 2 * n_items
        if manifest.get("shared_control_from"):
            shared += 1
            (owner,) = manifest["shared_control_from"]
            assert manifest["trial"]["model"] in json.loads(
                (run / owner / "results" / "trial_manifest.json").read_text(encoding="utf-8"))["trial"]["model"]
    assert shared == 2


def test_dry_run_needs_no_key_and_no_network(tmp_path):
    cfg = fw_config(tmp_path)
    proc = run_producer(tmp_path, fw_env(tmp_path, None), "run", "--config", str(cfg), "-w", "1", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (pred,) = run_dir_of(tmp_path).glob("*/results/predictions.csv")
    assert len(read_predictions_csv(pred)[1]) == 2 * sum(SIZES.values())
    assert not (tmp_path / "data" / "batch_inputs").exists()
    run = run_dir_of(tmp_path)
    assert (run / "fireworks" / "jobs.jsonl").is_file()
    run_id = run.name[len("run_"):]
    env = fw_env(tmp_path, None)

    changed = fw_config(tmp_path, max_new_tokens={"closed_book": 5, "open_book": 5})
    refused = run_producer(tmp_path, env, "enqueue", "--config", str(changed), "--run-id", run_id, "--dry-run")
    assert refused.returncode != 0 and "another config" in refused.stderr and "Traceback" not in refused.stderr
    forced = run_producer(tmp_path, env, "enqueue", "--config", str(changed), "--run-id", run_id, "--dry-run", "--force")
    assert forced.returncode == 0, forced.stderr

    packed = run_producer(tmp_path, env, "archive", "--run-id", run_id)
    assert packed.returncode == 0, packed.stderr
    with zipfile.ZipFile(tmp_path / "experiments" / f"run_{run_id}.zip") as zf:
        names = set(zf.namelist())
    trial = pred.parent.parent.name
    for must in ("run_state.json", "effective_config.yaml", f"{trial}/results/predictions.csv",
                 f"{trial}/results/trial_manifest.json", f"{trial}/reports/report.md"):
        assert f"run_{run_id}/{must}" in names
    assert any(n.startswith(f"run_{run_id}/prompts/default/control_") for n in names)
    assert not list((tmp_path / "experiments").glob(".*tmp"))


def test_missing_key_is_one_line_error(tmp_path):
    cfg = fw_config(tmp_path)
    proc = run_producer(tmp_path, fw_env(tmp_path, None), "enqueue", "--config", str(cfg))
    assert proc.returncode != 0
    assert "FIREWORKS_API_KEY" in proc.stderr and "Traceback" not in proc.stderr


def test_failed_and_expired_jobs_then_retry_failed(tmp_path, server):
    server.state.final_state = "JOB_STATE_FAILED"
    cfg = fw_config(tmp_path)
    env = fw_env(tmp_path, server)
    proc = run_producer(tmp_path, env, "run", "--config", str(cfg), "-w", "1")
    assert proc.returncode == ALL_FAILED, proc.stdout + proc.stderr
    (res,) = run_dir_of(tmp_path).glob("*/results")
    errors = [json.loads(x) for x in (res / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(errors) == 2 * sum(SIZES.values())
    assert "ended JOB_STATE_FAILED: Dataset has a syntax error" in errors[0]["error"]
    first_jobs = server.state.counts["job_creates"]

    server.state.final_state = "JOB_STATE_EXPIRED"  # half of each job comes back
    run_id = run_dir_of(tmp_path).name[len("run_"):]
    proc = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "--retry-failed", "-w", "1")
    assert proc.returncode == SOME_FAILED, proc.stdout + proc.stderr
    assert server.state.counts["job_creates"] == 2 * first_jobs  # new job ids for the failed parts
    _, rows = read_predictions_csv(res / "predictions.csv")
    missing = [json.loads(x) for x in (res / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and missing and len(rows) + len(missing) == 2 * sum(SIZES.values())
    assert all("no output row" in e["error"] for e in missing)

    server.state.final_state = "JOB_STATE_COMPLETED"
    before = {k: len(v["rows"]) for k, v in server.state.datasets.items() if k.endswith("-in")}
    proc = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "--retry-failed", "-w", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(read_predictions_csv(res / "predictions.csv")[1]) == 2 * sum(SIZES.values())
    resent = sum(len(v["rows"]) for k, v in server.state.datasets.items() if k.endswith("-in") and k not in before)
    assert resent == len(missing)  # only the rows without a result were sent again
