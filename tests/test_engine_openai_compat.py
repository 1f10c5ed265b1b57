"""The openai_compat engine against llama-cpp-python's real server serving SmolLM2, and parity with the
in-process llama_cpp engine (same config but two lines)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from config.contract import PREDICTIONS_COLUMNS
from config.model_files import resolve_model_path
from config.schema import EvalConfig, load_config
from tests.support.offline_config import offline_config_dict
from tests.support.paths import ROOT
from tests.support.servers.llama_server import free_port, llama_server
from workers.engines.base import GenerationParams, PermanentEngineError, TransientEngineError
from workers.engines.http_common import EngineUnreachableError
from workers.engines.openai_compat import API_KEY_ENV, OpenAICompatEngine, timing_facts
from workers.engines.registry import create_engine

MESSAGES = [{"role": "system", "content": "You answer in a few words."},
            {"role": "user", "content": "What is the capital of France?"}]

pytestmark = pytest.mark.realmodel


@pytest.fixture(scope="module")
def server_url(tmp_path_factory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    with llama_server(resolve_model_path("smollm2"), log, n_ctx=2048) as url:
        yield url


def compat_cfg(tmp_path: Path, url: str, **overrides) -> EvalConfig:
    settings = {"local_engine": "openai_compat", "local_endpoint": url, "local_model": "smollm2", "n_ctx": 2048,
                "n_gpu_layers": 0, "request_timeout_s": 60.0, **overrides}
    return EvalConfig(**offline_config_dict(tmp_path, **settings))


def test_real_server_answers_with_usage(tmp_path, server_url, monkeypatch):
    monkeypatch.setenv(API_KEY_ENV, "sk-test-secret-123")  # llama_cpp.server without --api_key accepts any
    engine = create_engine(compat_cfg(tmp_path, server_url + "/v1"))
    assert isinstance(engine, OpenAICompatEngine) and engine.thread_safe
    assert engine.models() == ["smollm2"]
    result = engine.generate(MESSAGES, GenerationParams(max_tokens=16, temperature=0.0, seed=1))
    assert "paris" in result.text.lower()
    assert result.finish_reason in ("stop", "length")
    assert result.usage.prompt_tokens and result.usage.prompt_tokens > 10
    assert 0 < result.usage.completion_tokens <= 16
    assert result.usage.estimated is False
    assert result.request_id.startswith("chatcmpl")
    assert result.engine["name"] == "openai_compat" and result.engine["endpoint"] == server_url
    assert "sk-test-secret-123" not in repr(result.to_dict())
    engine.close()


def test_gguf_vocab_count_matches_the_server(tmp_path, server_url):
    """The estimator (GGUF vocabulary + chat template) counts the prompt exactly as the server does."""
    from config.token_count import gguf_counter

    result = OpenAICompatEngine(compat_cfg(tmp_path, server_url), None).generate(MESSAGES, GenerationParams(1, 0.0))
    assert gguf_counter(resolve_model_path("smollm2"))(MESSAGES) == result.usage.prompt_tokens


def test_preflight_against_the_real_server(tmp_path, server_url, monkeypatch):
    from producer.checks.preflight import can_start, run_preflight

    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(tmp_path / "queue"))
    checks = {c.name: c for c in run_preflight(compat_cfg(tmp_path, server_url))}
    assert checks["engine"].status == "ok" and "smollm2" in checks["engine"].detail
    assert checks["model"].status == "ok"
    # llama_cpp.server does not publish its context size (llama-server does, in /props): a warning, not a failure
    assert checks["context"].status == "warn" and "does not say its context length" in checks["context"].detail
    assert can_start(list(checks.values()))


def test_length_limit_and_determinism(tmp_path, server_url):
    engine = OpenAICompatEngine(compat_cfg(tmp_path, server_url), None)
    ask = [{"role": "user", "content": "Write a long story about a dragon."}]
    a = engine.generate(ask, GenerationParams(max_tokens=5, temperature=0.0))
    b = engine.generate(ask, GenerationParams(max_tokens=5, temperature=0.0))
    assert a.finish_reason == "length" and a.usage.completion_tokens == 5
    assert a.text == b.text


def test_prompt_too_long_is_permanent_with_server_message(tmp_path, server_url):
    """llama_cpp.server answers 400 with an OpenAI-style error when the prompt exceeds n_ctx."""
    engine = OpenAICompatEngine(compat_cfg(tmp_path, server_url), None)
    too_long = [{"role": "user", "content": "apple " * 2500}]
    with pytest.raises(PermanentEngineError, match=r"HTTP 400: .*context") as info:
        engine.generate(too_long, GenerationParams(max_tokens=4, temperature=0.0))
    assert not isinstance(info.value, TransientEngineError)


def test_server_down_is_transient_and_named(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EngineUnreachableError, match=f"cannot reach OpenAI-compatible server at {url}: start the server"):
        OpenAICompatEngine(compat_cfg(tmp_path, url), None).generate(MESSAGES, GenerationParams(4, 0.0))


def test_llama_cpp_timings_become_facts():
    body = {"usage": {"prompt_tokens": 30, "completion_tokens": 4},
            "timings": {"cache_n": 24, "prompt_n": 6, "prompt_ms": 12.5, "prompt_per_second": 480.0,
                        "predicted_n": 4, "predicted_ms": 40.0, "predicted_per_second": 100.0}}
    facts = timing_facts(body)
    assert facts["cached_tokens"] == 24 and facts["prompt_n"] == 6 and facts["predicted_per_second"] == 100.0


def _write_short_prompts(tmp_path: Path) -> dict:
    """Short system prompts keep the real-model run to seconds on two CPU cores."""
    control = tmp_path / "control.txt"
    treatment = tmp_path / "treatment.txt"
    control.write_text("You are a helpful assistant.", encoding="utf-8")
    treatment.write_text("You are a careful assistant. If unsure, say I don't know.", encoding="utf-8")
    return {"default": {"control": str(control), "treatment": str(treatment)}}


def test_switching_engine_is_two_lines_and_predictions_match(tmp_path, server_url):
    """Same YAML but ``local_engine`` and ``local_endpoint``: both engines write predictions.csv with
    the contract's columns, and tools/engine_parity.py reports how many answers agree."""
    raw = offline_config_dict(tmp_path, local_engine="llama_cpp", local_model="smollm2", n_ctx=2048, n_gpu_layers=0,
                              sizes={"squad_v2": 0, "triviaqa": 1, "nq_open": 1},
                              prompt_sets=_write_short_prompts(tmp_path))
    text_a = yaml.safe_dump(raw, sort_keys=False)
    lines_a = text_a.splitlines()
    lines_b = [f"local_engine: openai_compat\nlocal_endpoint: {server_url}" if line.startswith("local_engine:") else line
               for line in lines_a]
    text_b = "\n".join(lines_b) + "\n"
    (tmp_path / "a.yaml").write_text(text_a, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(text_b, encoding="utf-8")
    import difflib
    diff = [d for d in difflib.unified_diff(text_a.splitlines(), text_b.splitlines(), lineterm="", n=0)
            if d[:1] in "+-" and not d.startswith(("+++", "---"))]
    assert diff == ["-local_engine: llama_cpp", "+local_engine: openai_compat", f"+local_endpoint: {server_url}"]
    assert load_config(tmp_path / "b.yaml").local_engine == "openai_compat"

    out = tmp_path / "parity"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "engine_parity.py"), "run", "--config-a", str(tmp_path / "a.yaml"),
         "--config-b", str(tmp_path / "b.yaml"), "--limit-items", "1", "--max-requests", "4", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=300,
        env={**os.environ, "EXCELLENCE_NO_CPU_REPACK": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(proc.stdout)
    header_a = (out / "a" / "predictions.csv").read_text(encoding="utf-8").splitlines()[0]
    header_b = (out / "b" / "predictions.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header_a == header_b == ",".join(PREDICTIONS_COLUMNS)
    assert "schema identical: yes" in proc.stdout
    assert "answers agree: " in proc.stdout and " of 4 " in proc.stdout
