"""The OpenAI batch provider against the fake OpenAI server over real HTTP: the server is faithful (the
official SDK drives it), the client retries what it should, and the provider's rows, lookups and joins."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import openai
import pytest

from config.errors import ConfigError
from config.schema import validate_config_dict
from producer.host.env import BatchConfigError, KeyCredentials, _Secret
from producer.inputs.fireworks_plan import RowValidationError
from tests.support.offline_config import offline_config_dict
from tests.support.servers.fake_openai_batch import FakeOpenAIServer, FakeState, Fault
from workers.batch_provider import provider_for
from workers.openai_batch.client import OpenAIBatchClient, OpenAIError
from workers.openai_batch.provider import META_KEY, OpenAIProvider

KEY = "sk-canary-OPENAI-0123456789abcdef"
MODEL = "gpt-4o-mini"


@pytest.fixture
def server():
    srv = FakeOpenAIServer(FakeState(api_key=KEY)).start()
    yield srv
    srv.stop()


def _sdk(srv: FakeOpenAIServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=srv.base_url, max_retries=0)


def _line(cid: str, model: str = MODEL, **body: object) -> dict:
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"QUESTION: who is {cid}"}], **body}}


def _file(sdk: openai.OpenAI, lines: list[dict]) -> str:
    data = "".join(json.dumps(x) + "\n" for x in lines).encode("utf-8")
    return sdk.files.create(file=("in.jsonl", data, "application/jsonl"), purpose="batch").id


def _settle(sdk: openai.OpenAI, batch_id: str):
    for _ in range(10):
        batch = sdk.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
    raise AssertionError("batch did not end")


def _cfg(tmp: Path, **over: object):
    raw = offline_config_dict(tmp, backend="openai", model_id=MODEL, retry_backoff_s=0.01,
                              openai={"poll_interval_s": 0.1, "request_deadline_s": 3})
    raw.update(over)
    return validate_config_dict(raw)


def _provider(tmp: Path, srv: FakeOpenAIServer, **over: object) -> OpenAIProvider:
    cfg = _cfg(tmp, **over)
    return OpenAIProvider(cfg, OpenAIBatchClient(KeyCredentials(_Secret(KEY), srv.base_url), 3.0, 0.01))


@pytest.mark.parametrize("n", [3])
def test_the_official_sdk_runs_a_batch_on_the_fake_server(server, n):
    sdk = _sdk(server)
    file_id = _file(sdk, [_line(f"r{i}", max_tokens=5) for i in range(n)])
    assert sdk.files.retrieve(file_id).purpose == "batch"
    batch = sdk.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h",
                               metadata={"k": "v"})
    assert batch.status == "validating" and batch.metadata == {"k": "v"}
    batch = _settle(sdk, batch.id)
    assert batch.status == "completed" and batch.request_counts.completed == n and batch.error_file_id is None
    rows = [json.loads(x) for x in sdk.files.content(batch.output_file_id).content.decode().splitlines()]
    assert sorted(r["custom_id"] for r in rows) == [f"r{i}" for i in range(n)]
    for r in rows:
        assert set(r) == {"id", "custom_id", "response", "error"} and r["error"] is None
        assert r["response"]["status_code"] == 200 and r["response"]["body"]["object"] == "chat.completion"
        assert r["response"]["body"]["usage"]["prompt_tokens_details"]["cached_tokens"] == 2
    assert [b.id for b in sdk.batches.list(limit=5)] == [batch.id]


def test_validation_failures_fail_the_whole_batch_with_lines(server):
    sdk = _sdk(server)
    file_id = _file(sdk, [_line("a"), _line("b"), _line("a"), _line("c", model="gpt-4o")])
    batch = sdk.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    batch = _settle(sdk, batch.id)
    assert batch.status == "failed" and batch.output_file_id is None
    assert [(e.code, e.line) for e in batch.errors.data] == [("duplicate_custom_id", 3), ("mismatched_model", 4)]
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="1h")
    assert exc.value.body["param"] == "completion_window"


def test_expired_batch_keeps_partial_output_and_cancel_skips_the_rest(server):
    sdk = _sdk(server)
    server.state.final_status, server.state.reached = "expired", 2
    batch = sdk.batches.create(input_file_id=_file(sdk, [_line(f"r{i}") for i in range(5)]),
                               endpoint="/v1/chat/completions", completion_window="24h")
    batch = _settle(sdk, batch.id)
    assert batch.status == "expired" and (batch.request_counts.completed, batch.request_counts.failed) == (2, 3)
    errs = [json.loads(x) for x in sdk.files.content(batch.error_file_id).content.decode().splitlines()]
    assert {e["error"]["code"] for e in errs} == {"batch_expired"} and all(e["response"] is None for e in errs)
    server.state.final_status, server.state.hold = "completed", True
    held = sdk.batches.create(input_file_id=_file(sdk, [_line("x")]), endpoint="/v1/chat/completions",
                              completion_window="24h")
    assert sdk.batches.cancel(held.id).status == "cancelling"
    assert _settle(sdk, held.id).status == "cancelled"
    with pytest.raises(openai.ConflictError):
        sdk.batches.cancel(held.id)


def test_a_wrong_key_is_401_with_a_masked_key(server):
    with pytest.raises(openai.AuthenticationError) as exc:
        _sdk(server, "sk-wrong-key-7777").batches.list()
    assert exc.value.body["code"] == "invalid_api_key" and "sk-wrong-key-7777" not in str(exc.value)


def test_client_retries_429_with_retry_after_and_5xx_but_not_other_4xx(server):
    client = OpenAIBatchClient(KeyCredentials(_Secret(KEY), server.base_url), deadline_s=5.0, backoff_s=0.01)
    server.state.faults += [Fault("list_batches", 429, 1, "Rate limit reached", retry_after="0.3"),
                            Fault("list_batches", 500, 1)]
    start = time.monotonic()
    assert client.find_batch(META_KEY, "nothing") is None
    assert time.monotonic() - start >= 0.3 and server.state.counts["list_batches"] == 3
    server.state.faults.append(Fault("list_files", 400, 5, "bad request"))
    with pytest.raises(OpenAIError) as exc:
        client.find_file("x.jsonl")
    assert exc.value.status == 400 and server.state.counts["list_files"] == 1
    wrong = OpenAIBatchClient(KeyCredentials(_Secret("sk-wrong-0123456789"), server.base_url), 2.0, 0.01)
    with pytest.raises(OpenAIError) as exc:
        wrong.get_batch("batch_x")
    assert exc.value.status == 401 and "sk-wrong-0123456789" not in str(exc.value)


def test_key_and_base_come_from_the_environment_https_only(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BatchConfigError, match="OPENAI_API_KEY is not set"):
        KeyCredentials.from_env("openai")
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={KEY}\n", encoding="utf-8")
    creds = KeyCredentials.from_env("openai")
    assert creds.api_base == "https://api.openai.com/v1" and KEY not in repr(creds)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://api.example.com/v1")
    with pytest.raises(BatchConfigError, match="OPENAI_BASE_URL .*must use https://"):
        KeyCredentials.from_env("openai")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert KeyCredentials.from_env("openai").api_base == "http://127.0.0.1:9/v1"


def test_reasoning_models_get_their_own_body_and_refuse_a_temperature_sweep(tmp_path, server):
    prov = _provider(tmp_path, server)
    row = {"custom_id": "squad_v2|q1|control|0.0|0|open", "body": {
        "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9, "temperature": 1.0, "seed": 4}}
    plain = json.loads(prov.encode_part([row], MODEL, {}))
    assert plain["body"] == {"model": MODEL, **row["body"]} and plain["url"] == "/v1/chat/completions"
    reasoning = json.loads(prov.encode_part([row], "o3", {}))["body"]
    assert reasoning == {"model": "o3", "messages": row["body"]["messages"], "max_completion_tokens": 9}
    with pytest.raises(RowValidationError, match="duplicate custom_id"):
        prov.encode_part([row, row], MODEL, {})
    with pytest.raises(ConfigError, match="temps: o3 is a reasoning model.*not \\[0.0, 0.7\\]"):
        _cfg(tmp_path, model_id="o3", temps=[0.0, 0.7], samples_per_item={"0.0": 1, "0.7": 1})
    with pytest.raises(ConfigError, match="top_k: the openai backend takes no top_k"):
        _cfg(tmp_path, top_k=40)
    assert _cfg(tmp_path, model_id="o3", temps=[1.0], samples_per_item={"1.0": 1}).model_id == "o3"


def test_a_batch_created_whose_answer_was_lost_is_found_not_created_again(tmp_path, server):
    prov = _provider(tmp_path, server)
    data = prov.encode_part([{"custom_id": "squad_v2|q1|control|0.0|0|open", "body": {
        "messages": [{"role": "user", "content": "QUESTION: who"}], "max_tokens": 9}}], MODEL, {})
    server.state.hang = {"create_batch"}  # the service creates the batch; its answer never arrives
    lost = OpenAIBatchClient(KeyCredentials(_Secret(KEY), server.base_url), deadline_s=1.0, backoff_s=0.01)
    lost.sdk = lost.sdk.with_options(timeout=0.5)
    first = OpenAIProvider(prov.cfg, lost)
    first.upload("job-1-in", "part.jsonl", data, 1, "d")
    with pytest.raises(OpenAIError):
        first.create_job("job-1", MODEL, "job-1-in", "job-1-out", {}, "d")
    server.state.hang = set()
    server.state.release.set()
    again = _provider(tmp_path, server)  # a new process: nothing remembered
    assert again.find_job("job-1") is not None
    again.upload("job-1-in", "part.jsonl", data, 1, "d")
    job = again.create_job("job-1", MODEL, "job-1-in", "job-1-out", {}, "d")
    assert server.state.counts["batches_created"] >= 1 and len(server.state.batches) == 1
    assert len([f for f in server.state.files.values() if f["purpose"] == "batch"]) == 1
    while not job.terminal:
        job = again.find_job("job-1")
    results, errors = again.read_rows(again.download(job.output_id))
    assert list(results) == ["squad_v2|q1|control|0.0|0|open"] and not errors
    assert results["squad_v2|q1|control|0.0|0|open"]["cached_tokens"] == 2


def test_read_rows_joins_output_and_error_lines_on_custom_id(tmp_path, server):
    prov = _provider(tmp_path, server)
    ok = {"id": "batch_req_1", "custom_id": "b", "error": None, "response": {
        "status_code": 200, "request_id": "req_1", "body": {"choices": [{"message": {"content": "x"}}], "usage": {}}}}
    bad = {"id": "batch_req_2", "custom_id": "a", "error": None, "response": {
        "status_code": 400, "request_id": "req_2", "body": {"error": {"code": "unsupported_value", "message": "no"}}}}
    gone = {"id": "batch_req_3", "custom_id": "c", "response": None,
            "error": {"code": "batch_expired", "message": "not reached"}}
    files = {"output.jsonl": (json.dumps(ok) + "\n").encode(),
             "errors.jsonl": (json.dumps(gone) + "\n" + json.dumps(bad) + "\n").encode()}
    results, errors = prov.read_rows(files)
    assert list(results) == ["b"] and results["b"]["response"]["request_id"] == "req_1"
    assert errors == {"a": "HTTP 400 unsupported_value no", "c": "batch_expired not reached"}


def test_the_registry_row_finds_the_provider_and_its_dry_run(tmp_path):
    cfg = _cfg(tmp_path)
    prov = provider_for(cfg, "openai_dry_run")
    assert isinstance(prov, OpenAIProvider) and prov.find_job("none") is None


def test_hanging_endpoint_waits_until_released(server):
    server.state.hang = {"upload_file"}
    sdk = _sdk(server)
    t = threading.Thread(target=lambda: _file(sdk, [_line("a")]), daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while not server.state.hung.get("upload_file"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert len(server.state.files) == 1  # it acted before it hung
    server.state.release.set()
    t.join(5)
    assert not t.is_alive()
