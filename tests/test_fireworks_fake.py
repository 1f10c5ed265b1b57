"""The fake Fireworks server refuses what the documented API refuses (real HTTP, the real client).

Signed URLs expire, :upload has a size limit (413), dataset and job ids are validated, exampleCount
is checked, unknown fields are rejected; jobs carry createTime and can be held in PENDING.
"""

from __future__ import annotations

import time

import pytest

from producer.inputs.fireworks_plan import encode_rows
from tests.support.servers.fake_fireworks import FakeFireworksServer, FakeState
from workers.fireworks.client import BatchServiceError, Credentials, FireworksClient, _Secret

KEY = "fw-fake-SECRET-abcdef123456"


@pytest.fixture
def server():
    srv = FakeFireworksServer(FakeState(api_key=KEY)).start()
    yield srv
    srv.stop()


def _client(srv: FakeFireworksServer) -> FireworksClient:
    return FireworksClient(Credentials(_Secret(KEY), "acct", srv.base_url), deadline_s=3.0, backoff_s=0.01)


def _rows(n: int) -> bytes:
    return encode_rows([{"custom_id": f"triviaqa|q{i}|control|0.0|0|closed",
                         "body": {"messages": [{"role": "user", "content": f"QUESTION: q{i}?"}], "max_tokens": 4}}
                        for i in range(n)])


def _fail(call, status: int, words: str, server: FakeFireworksServer, endpoint: str) -> None:
    before = server.state.counts.get(endpoint, 0)
    with pytest.raises(BatchServiceError) as exc:
        call()
    assert exc.value.status == status and words in str(exc.value), str(exc.value)
    assert server.state.counts[endpoint] == before + 1  # a 4xx is never retried
    assert KEY not in str(exc.value)


def _finished_job(c: FireworksClient, server: FakeFireworksServer, n: int = 2) -> str:
    c.create_dataset("in-a", n)
    c.upload_dataset("in-a", "part.jsonl", _rows(n))
    c.create_job("job-a", "accounts/fireworks/models/m", "in-a", "out-a", {"maxTokens": 4, "n": 1})
    while c.get_job("job-a")["state"] != "JOB_STATE_COMPLETED":
        pass
    return "out-a"


def test_signed_urls_expire_with_403(server):
    server.state.url_ttl_s = 0.3
    c = _client(server)
    out = _finished_job(c, server)
    urls = c.download_urls(out)
    first = sorted(urls.values())[0]
    assert "X-Goog-Expires=1" in first
    assert c.fetch_signed(first) is not None  # fresh: served
    time.sleep(0.5)
    _fail(lambda: c.fetch_signed(first), 403, "Request has expired", server, "signed")
    fresh = c.download_urls(out)  # asking again gives new URLs that work
    assert set(fresh) == set(urls) and fresh != urls
    assert all(c.fetch_signed(u) is not None for u in fresh.values())
    assert server.state.signed_with_auth == 0


def test_upload_over_the_size_limit_is_413(server):
    server.state.upload_limit_bytes = 200
    c = _client(server)
    c.create_dataset("in-big", 5)
    _fail(lambda: c.upload_dataset("in-big", "part.jsonl", _rows(5)), 413, "too large", server, "upload")
    assert c.get_dataset("in-big")["state"] != "READY"


@pytest.mark.parametrize("bad", ["Upper-Case", "under_score", "-leading", "trailing-", "a" * 64, "dots.in.id",
                                 "sp ace"])
def test_dataset_and_job_ids_are_validated(server, bad):
    c = _client(server)
    _fail(lambda: c.create_dataset(bad, 1), 400, "invalid dataset_id", server, "create_dataset")
    c.create_dataset("in-ok", 1)
    c.upload_dataset("in-ok", "part.jsonl", _rows(1))
    _fail(lambda: c.create_job(bad, "m", "in-ok", "out-ok", {}), 400, "invalid batch_inference_job_id", server,
          "create_job")
    if "/" not in bad and " " not in bad:
        _fail(lambda: c.get_dataset(bad), 400, "invalid dataset_id", server, "get_dataset")


def test_example_count_is_checked(server):
    c = _client(server)
    body = {"datasetId": "in-x", "dataset": {"exampleCount": "three", "userUploaded": {}}}
    _fail(lambda: c.request("POST", c._url("datasets"), json=body), 400, "int64 field exampleCount", server,
          "create_dataset")
    body["dataset"]["exampleCount"] = "0"
    _fail(lambda: c.request("POST", c._url("datasets"), json=body), 400, "must be positive", server,
          "create_dataset")
    c.create_dataset("in-x", 3)
    _fail(lambda: c.upload_dataset("in-x", "part.jsonl", _rows(2)), 400, "exampleCount 3", server, "upload")
    c.upload_dataset("in-x", "part.jsonl", _rows(3))
    assert c.get_dataset("in-x")["state"] == "READY"


@pytest.mark.parametrize("endpoint, body, field", [
    ("create_dataset", {"datasetId": "in-u", "dataset": {"exampleCount": "1", "rows": []}}, "rows"),
    ("create_dataset", {"datasetId": "in-u", "dataset": {"exampleCount": "1"}, "overwrite": True}, "overwrite"),
    ("create_job", {"model": "m", "inputDatasetId": "accounts/acct/datasets/in-u", "max_tokens": 4}, "max_tokens"),
    ("create_job", {"model": "m", "inputDatasetId": "accounts/acct/datasets/in-u",
                    "inferenceParameters": {"maxTokens": 4, "top_p": 0.5}}, "top_p"),
])
def test_unknown_fields_are_rejected(server, endpoint, body, field):
    c = _client(server)
    url = c._url("datasets") if endpoint == "create_dataset" else c._url("batchInferenceJobs")
    _fail(lambda: c.request("POST", url, json=body), 400, f'unknown field "{field}"', server, endpoint)


def test_job_fields_are_typed_and_dataset_names_checked(server):
    c = _client(server)
    url = c._url("batchInferenceJobs")
    _fail(lambda: c.request("POST", url, json={"model": "m", "inputDatasetId": "in-u"}), 400,
          "accounts/<account>/datasets/<dataset_id>", server, "create_job")
    _fail(lambda: c.request("POST", url, json={"model": "m", "inputDatasetId": "accounts/acct/datasets/in-u",
                                               "inferenceParameters": {"maxTokens": "4"}}),
          400, "inferenceParameters.maxTokens", server, "create_job")


def test_jobs_have_create_time_and_can_stay_pending(server):
    server.state.hold_state = "JOB_STATE_PENDING"
    c = _client(server)
    c.create_dataset("in-p", 1)
    c.upload_dataset("in-p", "part.jsonl", _rows(1))
    job = c.create_job("job-p", "m", "in-p", "out-p", {"maxTokens": 4})
    assert job["createTime"].endswith("Z") and "T" in job["createTime"]
    states = {c.get_job("job-p")["state"] for _ in range(5)}
    assert states == {"JOB_STATE_PENDING"}
