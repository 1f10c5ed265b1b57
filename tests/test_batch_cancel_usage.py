"""The two last steps of the batch provider interface (issue 24, item 2): ``cancel`` and ``usage``, for
every provider against its test server over real HTTP, and ``producer stop --cancel-batches`` through
the real queue.

Why: a user who sees a paid batch go wrong must be able to stop paying from the command line (before,
only the provider's console could), and costs.json must be able to say what the service itself reported
beside what the rows add up to.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.schema import EvalConfig
from producer.host.env import KeyCredentials
from producer.host.exit_codes import ALL_FAILED
from producer.inputs.fireworks_plan import encode_rows
from tests.support.fireworks_runs import read_predictions_csv, run_dir_of, run_producer
from tests.support.offline_config import offline_config_dict
from tests.support.openai_runs import KEY as OA_KEY
from tests.support.openai_runs import PARTS, TOTAL, oa_config, oa_env
from tests.support.servers.fake_fireworks import FakeFireworksServer
from tests.support.servers.fake_fireworks import FakeState as FwState
from tests.support.servers.fake_openai_batch import FakeOpenAIServer
from tests.support.servers.fake_openai_batch import FakeState as OaState
from workers.batch_provider import BatchUsage
from workers.fireworks.client import Credentials, FireworksClient, _Secret
from workers.fireworks.provider import FireworksProvider
from workers.openai_batch.client import OpenAIBatchClient
from workers.openai_batch.provider import OpenAIProvider

FW_KEY = "fw-fake-SECRET-cancel-0123456789"
IDS = [f"triviaqa|q{i}|control|0.0|0|closed" for i in range(3)]
ROWS = [{"custom_id": cid, "body": {"messages": [{"role": "user", "content": f"QUESTION: {cid}?"}], "max_tokens": 4}}
        for cid in IDS]


def _cfg(tmp_path: Path) -> EvalConfig:
    return EvalConfig(**offline_config_dict(tmp_path))


@pytest.fixture
def fireworks(tmp_path):
    srv = FakeFireworksServer(FwState(api_key=FW_KEY)).start()
    client = FireworksClient(Credentials(_Secret(FW_KEY), "acct", srv.base_url), deadline_s=3.0, backoff_s=0.01)
    yield srv, FireworksProvider(_cfg(tmp_path), client)
    srv.stop()


@pytest.fixture
def openai(tmp_path):
    srv = FakeOpenAIServer(OaState(api_key=OA_KEY)).start()
    client = OpenAIBatchClient(KeyCredentials(_Secret(OA_KEY), srv.base_url), 3.0, 0.01)
    yield srv, OpenAIProvider(_cfg(tmp_path), client)
    srv.stop()


def _wait(provider, job_id: str, done=lambda j: j.terminal):
    deadline = time.monotonic() + 10
    while not done(job := provider.find_job(job_id)):
        assert time.monotonic() < deadline, job
        time.sleep(0.01)
    return job


def _start(provider, model: str, params: dict) -> None:
    data = provider.encode_part(ROWS, model, params) if hasattr(provider, "encode_part") else encode_rows(ROWS)
    provider.upload("in-a", "part.jsonl", data, len(ROWS), "run p1")
    provider.create_job("job-a", model, "in-a", "out-a", params, "run p1")


def test_fireworks_cancel_stops_a_running_job_once(fireworks):
    srv, provider = fireworks
    srv.state.hold_jobs = True
    assert provider.cancel("job-a") is None  # nothing to cancel yet
    _start(provider, "accounts/fireworks/models/m", {"maxTokens": 4, "n": 1})
    _wait(provider, "job-a", lambda j: j.state == "JOB_STATE_RUNNING")
    job = provider.cancel("job-a")
    assert job is not None and job.terminal and job.failed and not job.complete
    again = provider.cancel("job-a")  # a second stop asks nothing more of the service
    assert again is not None and again.terminal
    deletes = [c for c in srv.state.calls if c.get("method") == "DELETE"]
    assert len(deletes) == 1, srv.state.calls


def test_openai_cancel_stops_a_running_batch_and_keeps_what_it_answered(openai):
    srv, provider = openai
    srv.state.hold = True
    assert provider.cancel("job-a") is None
    _start(provider, "gpt-4o-mini", {"max_tokens": 4})
    _wait(provider, "job-a", lambda j: j.state == "in_progress")
    job = provider.cancel("job-a")
    assert job is not None and job.state == "cancelling" and not job.terminal
    job = _wait(provider, "job-a")
    assert job.state == "cancelled" and job.terminal
    assert provider.cancel("job-a").state == "cancelled"  # already ended: no second call
    assert srv.state.counts.get("cancel_batch", 0) == 1


@pytest.mark.parametrize("which", ["fireworks", "openai"])
def test_usage_is_what_the_service_reported(which, request):
    srv, provider = request.getfixturevalue(which)
    if which == "fireworks":
        _start(provider, "accounts/fireworks/models/m", {"maxTokens": 4, "n": 1})
    else:
        _start(provider, "gpt-4o-mini", {"max_tokens": 4})
    job = _wait(provider, "job-a")
    files = provider.download(job.output_id)
    results, _ = provider.read_rows(files)
    bodies = [r["response"]["body"]["usage"] for r in results.values()]
    usage = provider.usage(job, files)
    assert isinstance(usage, BatchUsage)
    assert usage.input_tokens == sum(u["prompt_tokens"] for u in bodies) > 0
    assert usage.output_tokens == sum(u["completion_tokens"] for u in bodies) > 0
    assert usage.cached_input_tokens == sum(u["prompt_tokens_details"]["cached_tokens"] for u in bodies) > 0


def test_stop_cancel_batches_cancels_every_open_batch_of_the_run(tmp_path):
    """A run whose batches are in progress: ``stop --cancel-batches`` cancels each once, the run stops;
    ``run --resume`` then fails the rows no batch answered and ``--retry-failed`` sends only them."""
    srv = FakeOpenAIServer(OaState(api_key=OA_KEY, hold=True)).start()
    try:
        cfg, env = oa_config(tmp_path), oa_env(tmp_path, srv)
        proc = subprocess.Popen([sys.executable, "-m", "producer", "run", "--config", str(cfg), "-w", "1"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while sum(b["status"] == "in_progress" for b in list(srv.state.batches.values())) < PARTS:
            assert time.monotonic() < deadline and proc.poll() is None, "the batches never started"
            time.sleep(0.05)
        run_id = run_dir_of(tmp_path).name[len("run_"):]
        stop = run_producer(tmp_path, env, "stop", "--run-id", run_id, "--cancel-batches")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert stop.stdout.count("cancelling") == PARTS and "Traceback" not in stop.stderr
        out = proc.communicate(timeout=90)[0].decode("utf-8", "replace")
        assert proc.returncode != 0, out  # stopped, not finished
        assert srv.state.counts.get("cancel_batch", 0) == PARTS
        again = run_producer(tmp_path, env, "stop", "--run-id", run_id, "--cancel-batches")
        assert again.returncode == 0 and srv.state.counts.get("cancel_batch", 0) == PARTS  # nothing twice
        srv.state.hold = False
        resumed = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "-w", "1")
        assert resumed.returncode == ALL_FAILED, resumed.stdout + resumed.stderr
        (pred,) = run_dir_of(tmp_path).glob("*/results/predictions.csv")
        errors = (pred.parent / "errors.jsonl").read_text(encoding="utf-8")
        assert errors.count("batch_cancelled") == TOTAL
        retried = run_producer(tmp_path, env, "run", "--config", str(cfg), "--resume", run_id, "--retry-failed",
                               "-w", "1")
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert len(read_predictions_csv(pred)[1]) == TOTAL
        costs = json.loads((pred.parent / "costs.json").read_text(encoding="utf-8"))
        reported = costs["reported_by_provider"]
        assert reported["output_tokens"] == costs["completion_tokens"]
        assert reported["cached_input_tokens"] == costs["cached_prompt_tokens"]
    finally:
        srv.state.hold = False
        srv.stop()
