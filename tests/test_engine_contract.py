"""One contract for every registered engine (issue 24): each is built by the registry from its row in
``config/engines.py``, answers a real request (HTTP engines against the real test servers, llama_cpp
with the bundled SmolLM2, dry_run offline), states its facts, and its registry facts match its class.
Then a throwaway engine, one module (this one) plus one registry row, goes through the pieces that
consult the registry (plan, manifests, VRAM budget, preflight, response cache) with no other file
touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from config.checks import OK, Check, EngineFacts
from config.engines import ENGINE_NAMES, ENGINES, EngineSpec, engine_spec, run_engine
from config.schema import EvalConfig
from producer.checks.preflight import run_preflight
from producer.planning.plan import size_refusal
from producer.runs.manifests import engine_batching, engine_settings
from telemetry.budget import config_budget, parallel_slots
from tests.support.offline_config import offline_config_dict
from tests.support.servers.fake_ollama import FakeModel, FakeOllama, FakeOllamaServer
from tests.support.servers.faulty_openai import FaultState, FaultyOpenAIServer
from workers.engines.base import EngineResult, GenerationParams, Usage
from workers.engines.http_common import HttpEngine
from workers.engines.registry import cache_identity_hook, create_engine, engine_class, preflight_hook
from workers.response_cache import cache_for

MESSAGES = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is the capital of France?"}]
SETTINGS = {  # what each engine needs beyond the offline config; HTTP engines get their server's URL
    "llama_cpp": {"local_model": "smollm2", "n_ctx": 512, "n_gpu_layers": 0, "n_threads": 2},
    "ollama": {"local_model": "smollm2:135m", "n_ctx": 2048, "request_timeout_s": 10.0},
    "openai_compat": {"local_model": "smollm2", "request_timeout_s": 10.0},
    "dry_run": {},
}
SERVERS = {
    "ollama": lambda: FakeOllamaServer(FakeOllama(models=[FakeModel("smollm2:135m")])),
    "openai_compat": lambda: FaultyOpenAIServer(FaultState()),
}


@pytest.fixture(params=ENGINE_NAMES)
def engine_cfg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EvalConfig]:
    name = request.param
    assert name in SETTINGS, f"add {name} to the contract suite's SETTINGS (and SERVERS for an HTTP engine)"
    with ExitStack() as stack:
        extra = dict(SETTINGS[name])
        if engine_spec(name).http:
            server = stack.enter_context(SERVERS[name]())
            extra["local_endpoint"] = server.url
        yield EvalConfig(**offline_config_dict(tmp_path, local_engine=name, **extra))


def test_every_registered_engine_keeps_the_contract(engine_cfg: EvalConfig) -> None:
    name = engine_cfg.local_engine
    spec, cls = engine_spec(name), engine_class(name)
    assert cls.name == name and isinstance(cls.thread_safe, bool)
    assert spec.http == issubclass(cls, HttpEngine)  # every HTTP engine shares the one base
    engine = create_engine(engine_cfg)
    try:
        params = GenerationParams(max_tokens=8, temperature=0.0, seed=7)
        result = engine.generate(MESSAGES, params)
        assert isinstance(result, EngineResult) and isinstance(result.text, str)
        assert isinstance(result.usage, Usage) and result.latency_s >= 0 and result.request_id
        assert result.engine["name"] == name and result.engine["model"]
        if spec.honours_seed or not spec.has_model:  # the same seeded request gives the same answer
            assert engine.generate(MESSAGES, params).text == result.text
    finally:
        engine.close()


def test_every_engine_with_a_model_has_a_preflight_probe_that_passes(engine_cfg: EvalConfig) -> None:
    name = engine_cfg.local_engine
    probe = preflight_hook(name)
    if not engine_spec(name).has_model:
        assert probe is None  # nothing to check: preflight says "no server or model needed"
        return
    assert probe is not None
    checks, facts = probe(engine_cfg, engine_cfg.local_model)
    assert checks and all(c.status != "fail" for c in checks), [c.line() for c in checks]
    assert isinstance(facts, EngineFacts)


def test_uncached_engines_say_why_and_cached_ones_have_an_identity() -> None:
    for name, spec in ENGINES.items():
        hook = cache_identity_hook(name)
        assert (hook is None) == bool(spec.uncached_reason), name


# -- a new engine: this module and one registry row ------------------------------------------------
class EchoEngine:
    """Answers with the last user message, upper-cased: no model file, no server."""

    name = "echo_test"
    thread_safe = True

    def __init__(self, cfg: EvalConfig, model: str | None = None) -> None:
        self.model = model or "echo"

    def generate(self, messages: list[dict[str, str]], params: GenerationParams) -> EngineResult:
        start = time.perf_counter()
        text = messages[-1]["content"].upper()[: params.max_tokens * 4]
        return EngineResult(text=text, finish_reason="stop", usage=Usage(len(messages), len(text.split())),
                            request_id=f"echo-{len(text)}", latency_s=time.perf_counter() - start,
                            engine=self.facts())

    def facts(self) -> dict[str, object]:
        return {"name": self.name, "model": self.model}

    def close(self) -> None:
        pass

    @classmethod
    def preflight(cls, cfg: EvalConfig, model: str) -> tuple[list[Check], EngineFacts]:
        return [Check("engine", OK, f"echo engine ready for {model}")], EngineFacts(cfg.n_ctx, "echo's own limit")

    @classmethod
    def cache_identity(cls, cfg: EvalConfig, model: str) -> tuple[str, dict[str, object]]:
        return f"echo:{model}", {"n_ctx": cfg.n_ctx}


@pytest.fixture
def echo_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EvalConfig:
    monkeypatch.setitem(ENGINES, EchoEngine.name, EngineSpec(f"{__name__}:EchoEngine", http=False, honours_seed=True))
    base = EvalConfig(**offline_config_dict(tmp_path, local_model="echo-1"))
    # the schema's list of names is read at import; the registry row is what every other piece consults
    return base.model_copy(update={"local_engine": EchoEngine.name, "cache": True})


def test_a_new_engine_needs_one_module_and_one_registry_row(echo_cfg: EvalConfig) -> None:
    engine = create_engine(echo_cfg)
    assert engine.generate(MESSAGES, GenerationParams(max_tokens=16, temperature=0.0)).text.startswith("WHAT IS")
    assert run_engine(echo_cfg) == "echo_test" and run_engine(echo_cfg, dry_run=True) == "dry_run"
    assert engine_settings(echo_cfg, "echo-1")["engine"] == "echo_test"
    batching = engine_batching(echo_cfg)
    assert batching["engine"] == "echo_test" and batching["mode"] == "server"
    assert parallel_slots(echo_cfg) == echo_cfg.static_in_flight() == 1  # not in process, unset: auto, 1 statically
    assert config_budget(echo_cfg).lines == ["VRAM budget: not applicable (no local GPU model)"]
    assert size_refusal(echo_cfg, 10**7, 1e12) is not None  # a real model: generation time counts
    checks = run_preflight(echo_cfg, check_data=False)
    assert any(c.name == "engine" and "echo engine ready for echo-1" in c.detail for c in checks)
    cache = cache_for(echo_cfg, "echo_test", "echo-1")
    assert cache is not None and cache.model_id == "echo:echo-1"
