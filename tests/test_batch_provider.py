"""Batch providers behind one interface (issue 24, item 2): the Fireworks provider keeps the
``BatchProvider`` contract against the fake Fireworks server over real HTTP, and the registry finds a
provider from its one row in ``config/engines.py``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from config.engines import BATCH_BACKENDS, BatchBackendSpec, batch_backend_of, is_batch, is_dry_run_engine
from config.schema import EvalConfig
from producer.inputs.fireworks_plan import encode_rows
from tests.support.offline_config import offline_config_dict
from tests.support.servers.fake_fireworks import FakeFireworksServer, FakeState
from workers.batch_provider import BatchJob, provider_for
from workers.fireworks.client import Credentials, FireworksClient, _Secret
from workers.fireworks.provider import FireworksProvider

KEY = "fw-fake-SECRET-abcdef123456"
IDS = [f"triviaqa|q{i}|control|0.0|0|closed" for i in range(3)]


def _cfg(tmp_path: Path) -> EvalConfig:
    return EvalConfig(**offline_config_dict(tmp_path))


def test_fireworks_keeps_the_batch_provider_contract(tmp_path: Path) -> None:
    srv = FakeFireworksServer(FakeState(api_key=KEY)).start()
    try:
        client = FireworksClient(Credentials(_Secret(KEY), "acct", srv.base_url), deadline_s=3.0, backoff_s=0.01)
        provider = FireworksProvider(_cfg(tmp_path), client)
        rows = [{"custom_id": cid, "body": {"messages": [{"role": "user", "content": f"QUESTION: {cid}?"}],
                                            "max_tokens": 4}} for cid in IDS]
        assert provider.find_job("job-a") is None  # nothing yet: the runner may create it
        provider.upload("in-a", "part.jsonl", encode_rows(rows), len(rows), "run p1")
        provider.upload("in-a", "part.jsonl", encode_rows(rows), len(rows), "run p1")  # a retried step: no error
        job = provider.create_job("job-a", "accounts/fireworks/models/m", "in-a", "out-a", {"maxTokens": 4, "n": 1},
                                  "run p1")
        again = provider.create_job("job-a", "accounts/fireworks/models/m", "in-a", "out-a",
                                    {"maxTokens": 4, "n": 1}, "run p1")
        assert isinstance(job, BatchJob) and again.raw.get("name") == job.raw.get("name")  # never a second job
        deadline = time.monotonic() + 10
        while not (job := provider.find_job("job-a")).terminal:
            assert time.monotonic() < deadline, job
            time.sleep(0.01)
        assert job.complete and not job.failed and job.output_id == "out-a"
        assert job.progress["total"] == len(IDS)
        results, errors = provider.read_rows(provider.download(job.output_id))
        assert sorted(results) == sorted(IDS) and errors == {}
        assert all(r["response"]["body"]["choices"] for r in results.values())
    finally:
        srv.stop()


class EchoBatch:
    """A second provider for the registry test: only ``for_run`` is needed to be found."""

    def __init__(self, engine: str) -> None:
        self.engine = engine

    @classmethod
    def for_run(cls, cfg: EvalConfig, engine: str) -> EchoBatch:
        return cls(engine)


def test_a_provider_is_found_from_its_registry_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(tmp_path)
    assert isinstance(provider_for(cfg, "fireworks_dry_run"), FireworksProvider)
    monkeypatch.setitem(BATCH_BACKENDS, "echo_batch", BatchBackendSpec(f"{__name__}:EchoBatch", "echo", "echo batches"))
    assert is_batch("echo_batch") and batch_backend_of("echo_batch_dry_run") == "echo_batch"
    assert is_dry_run_engine("echo_batch_dry_run") and not is_dry_run_engine("echo_batch")
    provider = provider_for(cfg, "echo_batch")
    assert isinstance(provider, EchoBatch) and provider.engine == "echo_batch"
    with pytest.raises(ValueError):
        provider_for(cfg, "llama_cpp")
