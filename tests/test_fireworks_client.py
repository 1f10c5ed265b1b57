"""The Fireworks client, part planner and .env loader against the fake Fireworks server (real HTTP)."""

from __future__ import annotations

import logging
import re

import pytest

from config.schema import validate_config_dict
from producer.host.env import get_setting, parse_env_text
from producer.inputs.fireworks_plan import (
    MAX_ID_LEN,
    RowValidationError,
    encode_rows,
    fireworks_ids,
    plan_parts,
    validate_row,
)
from producer.inputs.requests_build import Request
from producer.inputs.sweep_share import share_key
from producer.runs.trials import expand_trials
from tests.support.offline_config import offline_config_dict
from tests.support.servers.fake_fireworks import FakeFireworksServer, FakeState, Fault
from workers.fireworks.client import (
    BatchConfigError,
    BatchServiceError,
    Credentials,
    FireworksClient,
    _Secret,
)

KEY = "fw-SECRET-key-1234567890"


@pytest.fixture
def server():
    srv = FakeFireworksServer(FakeState(api_key=KEY)).start()
    yield srv
    srv.stop()


def _client(srv: FakeFireworksServer, deadline: float = 5.0) -> FireworksClient:
    return FireworksClient(Credentials(_Secret(KEY), "acct", srv.base_url), deadline_s=deadline, backoff_s=0.01)


def _row(cid: str = "triviaqa|q1|control|0.0|0|closed", **body) -> dict:
    b = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "QUESTION:\nWho?"}],
         "max_tokens": 8, "temperature": 0.0}
    b.update(body)
    return {"custom_id": cid, "body": b}


def test_example_count_is_required_and_400_is_not_retried(server):
    c = _client(server)
    with pytest.raises(BatchServiceError) as exc:
        c.request("POST", c._url("datasets"), json={"datasetId": "d1", "dataset": {"userUploaded": {}}})
    assert exc.value.status == 400
    assert "example_count is required" in str(exc.value)
    assert server.state.counts["create_dataset"] == 1  # a 4xx is not retried


def test_full_part_cycle_with_429_and_500_retried(server, caplog):
    server.state.faults += [Fault("create_job", 429, 2), Fault("get_job", 500, 2), Fault("upload", 503, 1)]
    c = _client(server)
    data = encode_rows([_row(), _row("triviaqa|q2|control|0.0|0|closed")])
    c.create_dataset("in-1", 2)
    c.create_dataset("in-1", 2)  # 409 -> returns the existing dataset, no error
    c.upload_dataset("in-1", "part.jsonl", data)
    assert c.get_dataset("in-1")["state"] == "READY"
    with caplog.at_level(logging.INFO, logger="workers.fireworks"):
        job = c.create_job("job-1", "accounts/fireworks/models/m1", "in-1", "out-1",
                           {"maxTokens": 8, "temperature": 0.0, "n": 1})
    assert job["state"] == "JOB_STATE_VALIDATING"
    assert server.state.counts["create_job"] == 3 and server.state.counts["job_creates"] == 1
    states = []
    while not states or states[-1] != "JOB_STATE_COMPLETED":
        states.append(c.get_job("job-1")["state"])
    assert states[:3] == ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_COMPLETED"]
    assert c.get_job("nope") is None
    urls = c.download_urls("out-1")
    names = {k.rsplit("/", 1)[-1] for k in urls}
    assert names == {"BIJOutputSet.jsonl", "error-data"}
    out = next(u for k, u in urls.items() if k.endswith("BIJOutputSet.jsonl"))
    lines = c.fetch_signed(out).decode("utf-8").splitlines()
    assert len(lines) == 2
    assert server.state.signed_with_auth == 0  # the key never goes to the signed-URL host
    sent = [call for call in server.state.calls if call["endpoint"] == "create_job"][-1]["body"]
    assert sent["inputDatasetId"] == "accounts/acct/datasets/in-1"
    assert sent["inferenceParameters"] == {"maxTokens": 8, "temperature": 0.0, "n": 1}
    assert KEY not in caplog.text


def test_400_with_message_fails_at_once_without_the_key(server):
    server.state.faults.append(Fault("create_job", 400, 5, message="model is not batch-capable"))
    c = _client(server)
    with pytest.raises(BatchServiceError) as exc:
        c.create_job("job-x", "m", "in", "out", {})
    assert "model is not batch-capable" in str(exc.value)
    assert server.state.counts["create_job"] == 1
    assert KEY not in str(exc.value) and KEY not in repr(c) and KEY not in repr(c.creds)


def test_5xx_gives_up_at_the_deadline(server):
    server.state.faults.append(Fault("get_job", 500, 1000))
    c = _client(server, deadline=0.3)
    with pytest.raises(BatchServiceError) as exc:
        c.get_job("j")
    assert exc.value.status == 500
    assert 2 <= server.state.counts["get_job"] < 1000


def test_bad_key_is_403_and_not_echoed(server):
    c = FireworksClient(Credentials(_Secret("wrong-key-abcdef"), "acct", server.base_url), backoff_s=0.01)
    with pytest.raises(BatchServiceError) as exc:
        c.get_dataset("x")
    assert exc.value.status == 403 and "wrong-key-abcdef" not in str(exc.value)


@pytest.mark.unit
def test_env_file_and_environment(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text('# comment\nexport FIREWORKS_API_KEY="k-from-file"\nFIREWORKS_ACCOUNT_ID=acct # inline\n',
                   encoding="utf-8")
    assert parse_env_text(env.read_text(encoding="utf-8")) == {"FIREWORKS_API_KEY": "k-from-file",
                                                                "FIREWORKS_ACCOUNT_ID": "acct"}
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    monkeypatch.delenv("FIREWORKS_ACCOUNT_ID", raising=False)
    monkeypatch.delenv("FIREWORKS_API_BASE", raising=False)
    monkeypatch.chdir(tmp_path)
    creds = Credentials.from_env()
    assert creds.account == "acct" and creds.api_key.reveal() == "k-from-file"
    assert "k-from-file" not in repr(creds)
    monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", "shell-wins")
    assert get_setting("FIREWORKS_ACCOUNT_ID") == "shell-wins"
    env.write_text("", encoding="utf-8")
    monkeypatch.delenv("FIREWORKS_ACCOUNT_ID")
    with pytest.raises(BatchConfigError, match="FIREWORKS_API_KEY"):
        Credentials.from_env()


@pytest.mark.unit
@pytest.mark.parametrize("row, message", [
    (_row("not-a-custom-id"), "custom_id"),
    (_row(messages=[]), "non-empty"),
    (_row(messages=[{"role": "bananas", "content": "x"}]), "invalid role"),
    (_row(max_tokens=8.0), "max_tokens"),
    (_row(max_tokens=True), "max_tokens"),
    (_row(temperature=3), "temperature"),
    (_row(top_p=0), "top_p"),
    (_row(model="m"), "model"),
])
def test_rows_are_validated_locally(row, message):
    with pytest.raises(RowValidationError, match=message):
        validate_row(row)


@pytest.mark.unit
def test_duplicate_custom_id_in_a_part_is_refused():
    with pytest.raises(RowValidationError, match="duplicate"):
        encode_rows([_row(), _row()])


@pytest.mark.unit
def test_ids_are_deterministic_and_valid():
    a = fireworks_ids("20261126-210000-ABCDEF", "Very_Long.Model:Name-with-stuff-default-tp0.9-tk40", 12)
    assert a == fireworks_ids("20261126-210000-ABCDEF", "Very_Long.Model:Name-with-stuff-default-tp0.9-tk40", 12)
    assert a != fireworks_ids("20261126-210000-ABCDEF", "Very_Long.Model:Name-with-stuff-default-tp0.9-tk40", 13)
    for v in a.values():
        assert re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", v) and len(v) <= MAX_ID_LEN


@pytest.mark.unit
def test_plan_splits_parts_and_shares_identical_controls(tmp_path):
    raw = offline_config_dict(tmp_path, backend="fireworks", sweep={"prompt_sets": ["default", "alt"]},
                              fireworks={"max_part_bytes": 2000})
    raw["prompt_sets"]["alt"] = dict(raw["prompt_sets"]["default"])
    cfg = validate_config_dict(raw, check_files=False)
    trials = expand_trials(cfg)
    body = _row()["body"]
    per_trial = []
    for t in trials:
        reqs = [Request(f"triviaqa|q{i}|{cond}|0.0|0|closed", t.slug, t.model, cond, "0.0", "closed",
                        {**body, "messages": [{"role": "system", "content": f"{cond}-{t.prompt_set}"},
                                              body["messages"][1]]})
                for cond in ("control", "treatment") for i in range(12)]
        per_trial.append((t, reqs))
    plan = plan_parts(cfg, per_trial)
    # the control system prompt text differs by prompt set here only in the treatment rows
    assert all(p.nbytes <= 2000 for p in plan.parts) and len(plan.parts) > 4
    sent = [cid for p in plan.parts for cid in p.custom_ids]
    assert len(sent) == len(set((p.trial, c) for p in plan.parts for c in p.custom_ids))
    assert share_key("m", "a", {"x": 1}) != share_key("m2", "a", {"x": 1})
    assert plan.shared_from == {}  # system prompts differ between prompt sets -> nothing shared


@pytest.mark.unit
def test_plan_shares_when_bodies_are_identical(tmp_path):
    raw = offline_config_dict(tmp_path, backend="fireworks", sweep={"prompt_sets": ["default", "alt"]})
    raw["prompt_sets"]["alt"] = dict(raw["prompt_sets"]["default"])
    cfg = validate_config_dict(raw, check_files=False)
    t1, t2 = expand_trials(cfg)
    body = _row()["body"]
    mk = lambda t, cond: Request(f"triviaqa|q1|{cond}|0.0|0|closed", t.slug, t.model, cond, "0.0", "closed",  # noqa: E731
                                 {**body, "messages": [{"role": "system", "content": cond}, body["messages"][1]]})
    plan = plan_parts(cfg, [(t1, [mk(t1, "control"), mk(t1, "treatment")]),
                            (t2, [mk(t2, "control")])])
    assert plan.shared_from == {(t2.slug, "triviaqa|q1|control|0.0|0|closed"): t1.slug}
    assert plan.chunk_of[(t2.slug, "triviaqa|q1|control|0.0|0|closed")] == \
        plan.chunk_of[(t1.slug, "triviaqa|q1|control|0.0|0|closed")]


@pytest.mark.unit
def test_each_trial_sends_its_own_model_and_parameters(tmp_path):
    """trials: with different models, top_p, top_k and max_new_tokens reach the bodies and job params."""
    from producer.inputs.messages import load_prompt_texts
    from producer.inputs.requests_build import iter_trial_requests

    raw = offline_config_dict(tmp_path, backend="fireworks", trials=[
        {"id": "a", "model": "accounts/x/models/a", "top_p": 0.5, "top_k": 7,
         "max_new_tokens": {"closed_book": 3, "open_book": 4}},
        {"id": "b", "model": "accounts/x/models/b", "top_p": 0.9, "temps": [0.0, 0.7]},
    ], samples_per_item={"0.0": 1, "0.7": 2})
    cfg = validate_config_dict(raw)
    items = [{"dataset": "triviaqa", "id": "t1", "question": "Who?", "answers": ["x"]},
             {"dataset": "squad_v2", "id": "s1", "context": "C", "question": "What?", "answers": [],
              "is_unanswerable": True}]
    per_trial = [(t, list(iter_trial_requests(cfg, t, items, load_prompt_texts(cfg, t.prompt_set))))
                 for t in expand_trials(cfg)]
    plan = plan_parts(cfg, per_trial)
    by_trial = {}
    for p in plan.parts:
        by_trial.setdefault(p.trial, []).append(p)
    assert {p.model for p in by_trial["a"]} == {"accounts/x/models/a"}
    assert {p.model for p in by_trial["b"]} == {"accounts/x/models/b"}
    a_params = {(p.type, p.inference_parameters["maxTokens"], p.inference_parameters["topP"],
                 p.inference_parameters.get("topK")) for p in by_trial["a"]}
    assert a_params == {("closed", 3, 0.5, 7), ("open", 4, 0.5, 7)}
    assert {p.inference_parameters["temperature"] for p in by_trial["b"]} == {0.0, 0.7}
    assert all(p.inference_parameters["topP"] == 0.9 and "topK" not in p.inference_parameters for p in by_trial["b"])
    b_reqs = next(r for t, r in per_trial if t.slug == "b")
    assert len(b_reqs) == 2 * 2 * (1 + 2)  # 2 items x 2 conditions x (1 sample at 0.0 + 2 at 0.7)
    assert plan.shared_from == {}  # different models: nothing shared
