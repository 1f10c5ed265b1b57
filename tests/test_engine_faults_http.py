"""HTTP failures a real server produces, through the real openai_compat engine against a real server on
127.0.0.1 (tests/support/servers/faulty_openai.py): a body cut off mid-answer, a reset, a JSON body that ends
early and HTTP 500 are transient (retried with backoff), as docs/engines.md promises; other 4xx stay
permanent."""

from __future__ import annotations

import json

import pytest

from config.schema import EvalConfig
from tests.support.offline_config import offline_config_dict
from tests.support.servers.faulty_openai import FaultPlan, FaultState, FaultyOpenAIServer, answer_text
from workers.engines.base import GenerationParams, PermanentEngineError, TransientEngineError
from workers.engines.openai_compat import OpenAICompatEngine

MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Capital of France?"}]
PARAMS = GenerationParams(max_tokens=8, temperature=0.0)


def _cfg(tmp_path, url: str, **overrides) -> EvalConfig:
    settings = {"local_engine": "openai_compat", "local_endpoint": url, "local_model": "smollm2",
                "request_timeout_s": 30.0, "max_retries": 4, "retry_backoff_s": 0.01, **overrides}
    return EvalConfig(**offline_config_dict(tmp_path, **settings))


@pytest.mark.parametrize("fault", ["truncate", "reset", "malformed", "e500"])
def test_an_answer_cut_off_or_broken_is_transient(tmp_path, fault):
    with FaultyOpenAIServer(FaultState(plan=FaultPlan(script=[fault]))) as server:
        engine = OpenAICompatEngine(_cfg(tmp_path, server.url))
        try:
            with pytest.raises(TransientEngineError) as err:
                engine.generate(MESSAGES, PARAMS)
            assert not isinstance(err.value, PermanentEngineError)
            assert "\n" not in str(err.value) and "127.0.0.1" in str(err.value)
            result = engine.generate(MESSAGES, PARAMS)  # the same session works on the next call
            assert result.text == answer_text(MESSAGES)
        finally:
            engine.close()


def test_truncated_bodies_are_retried_until_the_answer_arrives(tmp_path, monkeypatch):
    """The queue's retry loop over a server that cuts off, resets and garbles answers before one arrives."""
    from producer.ledger.db import close_all, connect
    from producer.ledger.writes import register_run
    from workers.inference import generate_with_retries

    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(tmp_path / "queue"))  # the retry loop reads the stop flag
    register_run(connect(), {"run_id": "r1", "config_path": None, "config_json": "{}", "fingerprint": "fp",
                             "engine": "openai_compat", "limit_items": None, "experiments_dir": str(tmp_path),
                             "prepared_dir": str(tmp_path)}, [], [])

    plan = FaultPlan(script=["truncate", "reset", "truncate", "malformed"])
    with FaultyOpenAIServer(FaultState(plan=plan)) as server:
        cfg = _cfg(tmp_path, server.url)
        engine = OpenAICompatEngine(cfg)
        body = {"messages": MESSAGES, "max_tokens": 8, "temperature": 0.0}
        req = {"run_id": "r1", "custom_id": "nq_open|q1|control|0.0|0|closed", "system_text": None,
               "body": json.dumps(body)}
        try:
            result, attempts, error = generate_with_retries(engine, req, cfg)
        finally:
            engine.close()
            close_all()
        assert error is None and result is not None and result.text == answer_text(MESSAGES)
        assert attempts == 5 and sum(server.state.sent.values()) == 5
        assert server.state.faults["truncate"] == 2


def test_a_4xx_stays_permanent(tmp_path):
    with FaultyOpenAIServer(FaultState()) as server:
        engine = OpenAICompatEngine(_cfg(tmp_path, server.url + "/nope"))
        try:
            with pytest.raises(PermanentEngineError):
                engine.generate(MESSAGES, PARAMS)
        finally:
            engine.close()
