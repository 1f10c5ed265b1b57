"""The Anthropic batch provider against the fake Anthropic server over real HTTP: the server is faithful
(the official SDK drives it), the client retries what it should, and the provider's requests, custom_id
map (a real SQLite ledger), lookups after a lost answer and results."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anthropic
import pytest

from config.contract import CONDITIONS, build_custom_id, temp_label
from config.errors import ConfigError
from config.schema import validate_config_dict
from producer.host.env import BatchConfigError, KeyCredentials, _Secret
from producer.inputs.fireworks_plan import RowValidationError
from producer.inputs.prepare import ensure_prepared
from producer.ledger import anthropic_batches, connect
from producer.runs.manifests import engine_settings
from tests.support.offline_config import offline_config_dict
from tests.support.paths import ROOT
from tests.support.servers.fake_anthropic_batch import FakeAnthropicServer, FakeState, Fault
from workers.anthropic_batch.client import AnthropicBatchClient, AnthropicError
from workers.anthropic_batch.provider import CUSTOM_ID_RULE, AnthropicProvider, anthropic_params, provider_id
from workers.batch_provider import provider_for

KEY = "sk-ant-api03-canary-ANTHROPIC-0123456789abcdef"
MODEL = "claude-sonnet-4-5"
CID = "squad_v2|q1|control|0.7|0|open"


@pytest.fixture
def server():
    srv = FakeAnthropicServer(FakeState(api_key=KEY, cache_min_tokens=5)).start()
    yield srv
    srv.stop()


@pytest.fixture
def ledger_dir(tmp_path, monkeypatch):
    """The provider keeps its custom_id map and batch intents in a real ledger in this folder."""
    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(tmp_path / "queue"))
    return tmp_path / "queue"


def _sdk(srv: FakeAnthropicServer, key: str = KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=srv.base_url, max_retries=0)


def _req(cid: str, **params: object) -> dict:
    return {"custom_id": cid, "params": {"model": MODEL, "max_tokens": 9, "messages": [
        {"role": "user", "content": f"QUESTION: who is {cid}"}], **params}}


def _settle(sdk: anthropic.Anthropic, batch_id: str):
    for _ in range(10):
        batch = sdk.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
    raise AssertionError("batch did not end")


def _cfg(tmp: Path, **over: object):
    raw = offline_config_dict(tmp, backend="anthropic", model_id=MODEL, retry_backoff_s=0.01, temps=[0.7],
                              samples_per_item={"0.7": 1}, anthropic={"poll_interval_s": 0.1, "request_deadline_s": 3})
    raw.update(over)
    return validate_config_dict(raw)


def _provider(tmp: Path, srv: FakeAnthropicServer, deadline: float = 3.0) -> AnthropicProvider:
    creds = KeyCredentials(_Secret(KEY), srv.base_url, "anthropic")
    return AnthropicProvider(_cfg(tmp), AnthropicBatchClient(creds, deadline, 0.01))


def _row(cid: str = CID, system: str = "Answer briefly.") -> dict:
    return {"custom_id": cid, "body": {"messages": [{"role": "system", "content": system},
                                                    {"role": "user", "content": "QUESTION: who"}],
                                       "max_tokens": 9, "temperature": 0.7, "seed": 42}}


def test_the_official_sdk_runs_a_batch_on_the_fake_server(server):
    sdk = _sdk(server)
    long_system = [{"type": "text", "text": "x " * 40, "cache_control": {"type": "ephemeral"}}]
    batch = sdk.messages.batches.create(requests=[_req(f"r{i}", system=long_system) for i in range(3)])
    assert batch.processing_status == "in_progress" and batch.request_counts.processing == 3
    assert batch.results_url is None and batch.created_at.tzinfo is not None
    batch = _settle(sdk, batch.id)
    assert batch.request_counts.succeeded == 3 and batch.results_url.endswith(f"/v1/messages/batches/{batch.id}/results")
    rows = list(sdk.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in rows) == ["r0", "r1", "r2"]
    assert all(r.result.type == "succeeded" and r.result.message.content[0].text for r in rows)
    usage = sorted((r.result.message.usage.cache_creation_input_tokens, r.result.message.usage.cache_read_input_tokens)
                   for r in rows)
    assert usage[0][0] == 0 and usage[0][1] > 0 and usage[-1][0] > 0  # one write, then reads
    others = [sdk.messages.batches.create(requests=[_req("a")]).id for _ in range(3)]
    page = sdk.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == others[::-1][:2] and page.has_more and page.last_id == others[1]
    assert [b.id for b in sdk.messages.batches.list(limit=2, after_id=page.last_id).data] == [others[0], batch.id]
    assert [b.id for b in sdk.messages.batches.list(limit=2)] == [*others[::-1], batch.id]  # the SDK pages on


def test_create_refuses_duplicate_and_invalid_custom_ids_and_bad_params_come_back_errored(server):
    sdk = _sdk(server)
    with pytest.raises(anthropic.BadRequestError) as exc:
        sdk.messages.batches.create(requests=[_req("a"), _req("a")])
    assert exc.value.body["type"] == "error" and exc.value.body["error"]["type"] == "invalid_request_error"
    assert "Duplicate custom_id" in exc.value.body["error"]["message"] and exc.value.request_id.startswith("req_")
    with pytest.raises(anthropic.BadRequestError, match="pattern"):
        sdk.messages.batches.create(requests=[_req(CID)])
    batch = sdk.messages.batches.create(requests=[_req("ok"), _req("hot", temperature=1.5)])
    batch = _settle(sdk, batch.id)
    assert (batch.request_counts.succeeded, batch.request_counts.errored) == (1, 1)
    bad = next(r for r in sdk.messages.batches.results(batch.id) if r.custom_id == "hot")
    assert bad.result.type == "errored" and bad.result.error.error.type == "invalid_request_error"
    assert "temperature" in bad.result.error.error.message


def test_expired_requests_and_cancel_then_canceled_rows(server):
    sdk = _sdk(server)
    server.state.expire_after = 1
    batch = _settle(sdk, sdk.messages.batches.create(requests=[_req(f"r{i}") for i in range(3)]).id)
    assert (batch.request_counts.succeeded, batch.request_counts.expired) == (1, 2)
    assert sorted(r.result.type for r in sdk.messages.batches.results(batch.id)) == ["expired", "expired", "succeeded"]
    server.state.expire_after, server.state.hold = None, True
    held = sdk.messages.batches.create(requests=[_req("x"), _req("y")])
    canceling = sdk.messages.batches.cancel(held.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = _settle(sdk, held.id)
    assert ended.request_counts.canceled == 2 and {r.result.type for r in sdk.messages.batches.results(held.id)} == {"canceled"}


def test_a_wrong_key_is_401_authentication_error(server):
    with pytest.raises(anthropic.AuthenticationError) as exc:
        _sdk(server, "sk-ant-wrong-7777").messages.batches.list()
    assert exc.value.body["error"]["type"] == "authentication_error" and "sk-ant-wrong-7777" not in str(exc.value)


def test_client_retries_429_with_retry_after_500_and_529_but_not_other_4xx(server):
    client = AnthropicBatchClient(KeyCredentials(_Secret(KEY), server.base_url, "anthropic"), 5.0, 0.01)
    server.state.faults += [Fault("list_batches", 429, 1, "Number of requests has exceeded your rate limit",
                                  retry_after="0.3"), Fault("list_batches", 500, 1), Fault("list_batches", 529, 1)]
    start = time.monotonic()
    assert list(client.batches_since(0)) == []
    assert time.monotonic() - start >= 0.3 and server.state.counts["list_batches"] == 4
    server.state.faults.append(Fault("get_batch", 400, 5, "bad request"))
    with pytest.raises(AnthropicError) as exc:
        client.get_batch("msgbatch_x")
    assert exc.value.status == 400 and server.state.counts["get_batch"] == 1
    wrong = AnthropicBatchClient(KeyCredentials(_Secret("sk-ant-wrong-0123456789"), server.base_url, "anthropic"), 2.0, 0.01)
    with pytest.raises(AnthropicError) as exc:
        wrong.get_batch("msgbatch_x")
    assert exc.value.status == 401 and "sk-ant-wrong-0123456789" not in str(exc.value)
    server.state.faults.append(Fault("create_batch", 500, 1))
    with pytest.raises(AnthropicError, match="HTTP 500"):  # a create that may have been made is not repeated
        client.create_batch([_req("a")])
    assert server.state.counts["create_batch"] == 1


@pytest.mark.unit
def test_key_and_base_come_from_the_environment_https_only(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(BatchConfigError, match="ANTHROPIC_API_KEY is not set"):
        KeyCredentials.from_env("anthropic")
    (tmp_path / ".env").write_text(f"ANTHROPIC_API_KEY={KEY}\n", encoding="utf-8")
    creds = KeyCredentials.from_env("anthropic")
    assert creds.api_base == "https://api.anthropic.com" and KEY not in repr(creds)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://api.example.com")
    with pytest.raises(BatchConfigError, match="ANTHROPIC_BASE_URL .*must use https://"):
        KeyCredentials.from_env("anthropic")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    assert KeyCredentials.from_env("anthropic").api_base == "http://127.0.0.1:9"


@pytest.mark.unit
def test_temperatures_0_to_1_only_and_the_manifest_says_no_seed(tmp_path):
    with pytest.raises(ConfigError, match=r"temps: the anthropic backend takes temperatures 0.0..1.0 .*not 1.5"):
        _cfg(tmp_path, temps=[0.7, 1.5], samples_per_item={"0.7": 1, "1.5": 1})
    cfg = _cfg(tmp_path, temps=[0.0, 0.7], samples_per_item={"0.0": 1, "0.7": 1})
    assert engine_settings(cfg, MODEL)["seed"].startswith("not sent: the Anthropic batch API takes no seed")
    openai = validate_config_dict(offline_config_dict(tmp_path, backend="openai", model_id="gpt-4o-mini",
                                                      temps=[1.5], samples_per_item={"1.5": 1}))
    assert "seed" not in engine_settings(openai, "gpt-4o-mini")


@pytest.mark.unit
def test_request_params_put_the_system_prompt_on_top_and_cache_the_long_one():
    body = {"messages": [{"role": "system", "content": "S" * 4100}, {"role": "user", "content": "Q"}],
            "max_tokens": 9, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "stop": ["\n\n"], "seed": 42}
    params = anthropic_params(body, MODEL, 1024)
    assert params == {"model": MODEL, "max_tokens": 9, "messages": [{"role": "user", "content": "Q"}],
                      "system": [{"type": "text", "text": "S" * 4100, "cache_control": {"type": "ephemeral"}}],
                      "temperature": 0.7, "top_p": 0.9, "top_k": 40, "stop_sequences": ["\n\n"]}
    short = anthropic_params({**body, "messages": [{"role": "system", "content": "Be brief."}, body["messages"][1]]},
                             MODEL, 1024)
    assert short["system"] == "Be brief."  # under the minimum cacheable length: not marked
    assert anthropic_params(body, MODEL, 0)["system"] == "S" * 4100  # 0: never marked


@pytest.mark.unit
def test_every_custom_id_of_the_samples_and_a_custom_dataset_round_trips(tmp_path, ledger_dir):
    raw = offline_config_dict(tmp_path, sizes={"squad_v2": None, "triviaqa": None, "nq_open": None},
                              custom_datasets={"my_faq": {"path": str(ROOT / "config" / "examples" / "my_faq.jsonl"),
                                                          "type": "open_book"}})
    cfg = validate_config_dict(raw)
    items = ensure_prepared(cfg).items
    cids = [build_custom_id(it["dataset"], it["id"], cond, temp_label(t), s, cfg.dataset_type(it["dataset"]))
            for it in items for cond in CONDITIONS for t in (0.0, 0.7) for s in range(2)]
    assert len(cids) == len(set(cids)) > 700 and any(c.startswith("my_faq|") for c in cids)
    conn = connect()
    mapped = anthropic_batches.provider_ids(conn, cids, provider_id)
    assert all(CUSTOM_ID_RULE.match(p) for p in mapped.values()) and len(set(mapped.values())) == len(cids)
    assert anthropic_batches.custom_ids_of(conn, mapped.values()) == {p: c for c, p in mapped.items()}
    assert anthropic_batches.provider_ids(conn, cids[:5], provider_id) == {c: mapped[c] for c in cids[:5]}


@pytest.mark.unit
def test_a_hash_collision_gets_the_next_id(ledger_dir):
    clash = lambda cid, n: "same" if n == 0 else f"same-{n}"  # noqa: E731 - every custom_id proposes one id
    got = anthropic_batches.provider_ids(connect(), ["a|1", "b|2", "c|3"], clash)
    assert sorted(got.values()) == ["same", "same-1", "same-2"]
    assert anthropic_batches.provider_ids(connect(), ["b|2"], clash) == {"b|2": got["b|2"]}


def test_a_batch_created_whose_answer_was_lost_is_found_not_created_again(tmp_path, server, ledger_dir):
    first = _provider(tmp_path, server, deadline=1.0)
    first.client.sdk = first.client.sdk.with_options(timeout=0.5)
    rows = [_row(), _row(CID.replace("q1", "q2"))]
    data = first.encode_part(rows, MODEL, {})
    line = json.loads(data.decode().splitlines()[0])
    assert CUSTOM_ID_RULE.match(line["custom_id"]) and line["params"]["system"] == "Answer briefly."
    assert "seed" not in line["params"] and line["params"]["temperature"] == 0.7
    server.state.hang = {"create_batch"}  # the service creates the batch; its answer never arrives
    first.upload("job-1-in", "part.jsonl", data, 2, "d")
    with pytest.raises(AnthropicError):
        first.create_job("job-1", MODEL, "job-1-in", "job-1-out", {}, "d")
    server.state.hang = set()
    server.state.release.set()
    _sdk(server).messages.batches.create(requests=[_req("other")])  # someone else's batch, made later
    from workers.anthropic_batch import provider as module

    module._BATCH_IDS.clear()  # a new process: only the ledger remembers
    again = _provider(tmp_path, server)
    job = again.find_job("job-1")
    assert job is not None and job.progress["total"] == 2
    again.upload("job-1-in", "part.jsonl", again.encode_part(rows, MODEL, {}), 2, "d")
    assert again.create_job("job-1", MODEL, "job-1-in", "job-1-out", {}, "d").output_id == job.output_id
    assert server.state.counts["batches_created"] == 2  # ours (once) and the other one
    while not job.terminal:
        job = again.find_job("job-1")
    files = again.download(job.output_id)
    results, errors = again.read_rows(files)
    assert sorted(results) == sorted(r["custom_id"] for r in rows) and not errors
    usage = again.usage(job, files)
    assert usage is not None and usage.input_tokens == sum(r["response"]["body"]["usage"]["prompt_tokens"]
                                                           for r in results.values())


def test_read_rows_maps_ids_back_and_keeps_errors_and_cache_tokens(tmp_path, server, ledger_dir):
    prov = _provider(tmp_path, server)
    ids = anthropic_batches.provider_ids(connect(), ["a|1|control|0.7|0|open", "b|2|control|0.7|0|open",
                                                     "c|3|control|0.7|0|open"], provider_id)
    a, b, c = ids.values()
    ok = {"custom_id": a, "result": {"type": "succeeded", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "stop_reason": "max_tokens",
        "content": [{"type": "text", "text": "Paris"}],
        "usage": {"input_tokens": 10, "output_tokens": 2, "cache_creation_input_tokens": 100,
                  "cache_read_input_tokens": 50}}}}
    bad = {"custom_id": b, "result": {"type": "errored", "error": {"type": "error", "error": {
        "type": "invalid_request_error", "message": "temperature: too high"}}}}
    gone = {"custom_id": c, "result": {"type": "expired"}}
    files = {"results.jsonl": "".join(json.dumps(x) + "\n" for x in (gone, ok, bad)).encode()}
    results, errors = prov.read_rows(files)
    row = results["a|1|control|0.7|0|open"]
    assert row["response"]["body"]["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": "Paris"},
                                                     "finish_reason": "length"}
    assert row["response"]["body"]["usage"] == {"prompt_tokens": 160, "completion_tokens": 2, "total_tokens": 162}
    assert row["cached_tokens"] == 50 and row["engine_facts"] == {"cache_write_tokens": 100}
    assert errors == {"b|2|control|0.7|0|open": "errored invalid_request_error: temperature: too high",
                      "c|3|control|0.7|0|open": "expired not processed"}
    usage = prov.usage(prov.find_job("none") or _ended(), files)
    assert usage.as_dict() == {"input_tokens": 160, "cached_input_tokens": 50, "output_tokens": 2, "cache_write_tokens": 100}
    with pytest.raises(Exception, match="was not sent from this queue folder"):
        prov.read_rows({"results.jsonl": json.dumps({"custom_id": "cforeign", "result": {"type": "expired"}}).encode()})
    with pytest.raises(RowValidationError, match="duplicate custom_id"):
        prov.encode_part([_row(), _row()], MODEL, {})


def _ended():
    from workers.batch_provider import BatchJob

    return BatchJob(state="ended", progress={}, terminal=True)


def test_the_registry_row_finds_the_provider_and_its_dry_run(tmp_path, ledger_dir):
    prov = provider_for(_cfg(tmp_path), "anthropic_dry_run")
    assert isinstance(prov, AnthropicProvider) and prov.find_job("none") is None


def test_cancel_stops_a_running_batch_once_and_its_rows_come_back_canceled(tmp_path, server, ledger_dir):
    prov = _provider(tmp_path, server)
    server.state.hold = True
    assert prov.cancel("job-c") is None  # nothing to cancel yet
    rows = [_row(), _row(CID.replace("q1", "q2"))]
    prov.upload("job-c-in", "part.jsonl", prov.encode_part(rows, MODEL, {}), 2, "d")
    assert prov.create_job("job-c", MODEL, "job-c-in", "job-c-out", {}, "d").state == "in_progress"
    job = prov.cancel("job-c")
    assert job is not None and job.state == "canceling" and not job.terminal
    job = prov.find_job("job-c")
    assert job.state == "ended" and job.terminal and not job.failed and not job.complete
    assert prov.cancel("job-c").state == "ended" and server.state.counts["cancel_batch"] == 1  # nothing twice
    results, errors = prov.read_rows(prov.download(job.output_id))
    assert not results and set(errors) == {r["custom_id"] for r in rows}
    assert all(e.startswith("canceled") for e in errors.values())


@pytest.mark.unit
def test_an_archived_batch_fails_its_part_and_an_ended_one_keeps_its_rows():
    from workers.anthropic_batch.provider import as_job

    batch = {"id": "msgbatch_1", "type": "message_batch", "processing_status": "ended", "created_at":
             "2025-01-01T00:00:00.5Z", "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results",
             "archived_at": None, "request_counts": {"processing": 0, "succeeded": 3, "errored": 1, "canceled": 0,
                                                     "expired": 1}}
    job = as_job(batch)
    assert job.terminal and not job.failed and not job.complete and job.created_at == 1735689600.5
    assert job.progress == {"total": 5, "processed": 5, "succeeded": 3, "failed": 2}
    assert as_job({**batch, "archived_at": "2025-01-30T00:00:00Z"}).failed
    running = as_job({**batch, "processing_status": "in_progress", "results_url": None,
                      "request_counts": {"processing": 5, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}})
    assert not running.terminal and running.progress["processed"] == 0


@pytest.mark.unit
def test_one_create_in_flight_per_key(ledger_dir):
    conn, base = connect(), "https://api.anthropic.com"
    assert anthropic_batches.claim_create(conn, base, "job-a", 3, busy_after=time.time() - 60) is None
    busy = anthropic_batches.claim_create(conn, base, "job-b", 3, busy_after=time.time() - 60)
    assert busy is not None and busy["job_id"] == "job-a"  # job-b waits: a batch found later is job-a's alone
    assert anthropic_batches.claim_create(conn, "http://127.0.0.1:9", "job-b", 3, time.time() - 60) is None
    assert anthropic_batches.claim_create(conn, base, "job-a", 3, busy_after=time.time() - 60) is None  # its own
    anthropic_batches.record_batch(conn, base, "job-a", "msgbatch_a")
    assert anthropic_batches.claim_create(conn, base, "job-b", 3, busy_after=time.time() - 60) is None
    assert anthropic_batches.claimed_batch_ids(conn, base) == {"msgbatch_a"}
    assert [r["job_id"] for r in anthropic_batches.open_intents(conn, base)] == ["job-b"]
    anthropic_batches.drop_intent(conn, base, "job-b")
    assert anthropic_batches.open_intents(conn, base) == [] and anthropic_batches.batch_of(conn, base, "job-b") is None
