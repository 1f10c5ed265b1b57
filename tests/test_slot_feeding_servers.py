"""HTTP engines' slots (issue 28): preflight compares ``max_concurrent_requests`` with the server's
parallel slots: llama-server's ``GET /props`` ``total_slots`` (the fake answers as llama-server
documents it; llama-cpp-python's server has no /props and gets no check), Ollama's
OLLAMA_NUM_PARALLEL as this process sees it (Ollama's API does not report it)."""

from __future__ import annotations

from config.schema import validate_config_dict
from tests.support.servers.fake_ollama import FakeModel, FakeOllama, FakeOllamaServer
from tests.support.servers.faulty_openai import FaultState, FaultyOpenAIServer
from workers.engines.ollama import OllamaEngine
from workers.engines.openai_compat import OpenAICompatEngine


def _parallel(checks) -> list[tuple[str, str]]:
    return [(c.status, c.detail) for c in checks if c.name == "parallel"]


def _cfg(engine: str, url: str, in_flight: int):
    return validate_config_dict({"backend": "local", "local_engine": engine, "local_model": "smollm2",
                                 "local_endpoint": url, "max_concurrent_requests": in_flight}, "test", check_files=False)


def test_llama_server_slots_against_requests_in_flight():
    state = FaultState(props={"total_slots": 4, "default_generation_settings": {"n_ctx": 2048}})
    with FaultyOpenAIServer(state) as server, FaultyOpenAIServer() as no_props:
        over = _parallel(OpenAICompatEngine.preflight(_cfg("openai_compat", f"{server.url}/v1", 8), "smollm2")[0])
        assert over[0][0] == "warn" and "exceeds the server's 4 slot(s)" in over[0][1] and "--parallel 8" in over[0][1]
        under = _parallel(OpenAICompatEngine.preflight(_cfg("openai_compat", f"{server.url}/v1", 1), "smollm2")[0])
        assert under[0][0] == "warn" and "max_concurrent_requests: 4" in under[0][1]
        checks, facts = OpenAICompatEngine.preflight(_cfg("openai_compat", f"{server.url}/v1", 4), "smollm2")
        assert _parallel(checks)[0][0] == "ok" and facts.context_limit == 2048
        assert _parallel(OpenAICompatEngine.preflight(_cfg("openai_compat", f"{no_props.url}/v1", 8), "smollm2")[0]) == []


def test_ollama_num_parallel_against_requests_in_flight(monkeypatch):
    with FakeOllamaServer(FakeOllama(models=[FakeModel("smollm2")])) as server:
        monkeypatch.delenv("OLLAMA_NUM_PARALLEL", raising=False)
        unset = _parallel(OllamaEngine.preflight(_cfg("ollama", server.url, 4), "smollm2")[0])
        assert unset[0][0] == "warn" and "not set here (default 1)" in unset[0][1] and "OLLAMA_NUM_PARALLEL=4" in unset[0][1]
        monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "2")
        assert "OLLAMA_NUM_PARALLEL is 2" in _parallel(OllamaEngine.preflight(_cfg("ollama", server.url, 4), "smollm2")[0])[0][1]
        monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "4")
        assert _parallel(OllamaEngine.preflight(_cfg("ollama", server.url, 4), "smollm2")[0])[0][0] == "ok"
        assert _parallel(OllamaEngine.preflight(_cfg("ollama", server.url, 1), "smollm2")[0]) == []
