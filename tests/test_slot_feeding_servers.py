"""HTTP engines' slots (issue 28): preflight compares ``max_concurrent_requests`` with the server's
parallel slots: llama-server's ``GET /props`` ``total_slots`` (the fake answers as llama-server
documents it; llama-cpp-python's server has no /props and gets no check), Ollama's
OLLAMA_NUM_PARALLEL as this process sees it (Ollama's API does not report it). Unset, it is auto:
the openai_compat engine takes llama-server's slots, and the worker keeps them fed across chunks."""

from __future__ import annotations

from config.schema import validate_config_dict
from producer.runs.manifests import engine_batching
from tests.support.chunk_feeding import (
    both_chunks_in_one_call,
    ctrl_c_after_first_chunk,
    enqueued_chunks,
    results_per_request,
)
from tests.support.queue_runs import write_config
from tests.support.servers.fake_ollama import FakeModel, FakeOllama, FakeOllamaServer
from tests.support.servers.faulty_openai import FaultState, FaultyOpenAIServer
from workers.engines.ollama import OllamaEngine
from workers.engines.openai_compat import OpenAICompatEngine


def _parallel(checks) -> list[tuple[str, str]]:
    return [(c.status, c.detail) for c in checks if c.name == "parallel"]


def _cfg(engine: str, url: str, in_flight: int | None):
    settings = {"backend": "local", "local_engine": engine, "local_model": "smollm2", "local_endpoint": url}
    if in_flight is not None:
        settings["max_concurrent_requests"] = in_flight
    return validate_config_dict(settings, "test", check_files=False)


def test_auto_matches_llama_server_slots_and_an_explicit_value_wins():
    """Unset: the engine reads /props once and keeps total_slots in flight (its pool sized to match);
    explicit 1 stays 1; a server without /props (llama-cpp-python's) gets 1; Ollama's auto is 1."""
    with FaultyOpenAIServer(FaultState(props={"total_slots": 4})) as server, FaultyOpenAIServer() as no_props:
        url = f"{server.url}/v1"
        auto = OpenAICompatEngine(_cfg("openai_compat", url, None))
        assert auto.concurrency == 4 and auto.session.get_adapter(url)._pool_maxsize == 4
        assert OpenAICompatEngine(_cfg("openai_compat", url, 1)).concurrency == 1
        assert OpenAICompatEngine(_cfg("openai_compat", f"{no_props.url}/v1", None)).concurrency == 1
        batching = engine_batching(_cfg("openai_compat", url, None))
        assert (batching["max_concurrent_requests"], batching["max_concurrent_requests_source"]) == (
            4, "auto: GET /props total_slots")
        assert engine_batching(_cfg("openai_compat", url, 2))["max_concurrent_requests_source"] == "config"
    with FakeOllamaServer(FakeOllama(models=[FakeModel("smollm2")])) as server:
        assert OllamaEngine(_cfg("ollama", server.url, None)).concurrency == 1


def test_the_worker_keeps_a_servers_slots_full_across_chunks(tmp_path, isolated_queue):
    """A real run against a llama-server with 4 slots and no max_concurrent_requests: one process_chunk
    call holds 4 requests in flight, takes the run's next chunk while the first drains, records one
    result per request; the second chunk's own message then finds nothing."""
    state = FaultState(props={"total_slots": 4})
    state.plan.latency_s = 0.05
    with FaultyOpenAIServer(state) as server:
        cfg = write_config(tmp_path, short_prompts=True, local_engine="openai_compat",
                           local_endpoint=f"{server.url}/v1", sizes={"squad_v2": 3, "triviaqa": 2, "nq_open": 2})
        run_id, chunks = enqueued_chunks(cfg, isolated_queue)
        assert len(chunks) == 2
        out, again, finished, requeued = both_chunks_in_one_call(run_id, chunks)
    assert state.max_in_flight == 4
    assert out["chunks"] == chunks and out["claimed"] == out["done"] == 14 and sorted(finished) == chunks
    assert again == {"claimed": 0} and requeued == []
    assert results_per_request(isolated_queue, run_id) == [1] * 14


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


def test_ctrl_c_gives_back_what_an_http_engines_prefetched_chunk_had_not_run(tmp_path, isolated_queue):
    """Ctrl+C once the first chunk has finished, with an HTTP engine feeding llama-server's 4 slots: the
    next chunk, claimed while the first drained, keeps the answers it has, gives the rest back queued
    (no worker left on them) and its message is re-sent."""
    state = FaultState(props={"total_slots": 4})
    state.plan.latency_s = 0.05
    with FaultyOpenAIServer(state) as server:
        cfg = write_config(tmp_path, short_prompts=True, local_engine="openai_compat",
                           local_endpoint=f"{server.url}/v1", sizes={"squad_v2": 3, "triviaqa": 2, "nq_open": 2})
        run_id, (first, second) = enqueued_chunks(cfg, isolated_queue)
        got = ctrl_c_after_first_chunk(isolated_queue, run_id, first, second)
    assert got["out"]["chunks"] == [first, second] and got["requeued"] == [(run_id, second)]
    assert got["states"].get("queued", 0) >= 1 and set(got["states"]) <= {"done", "queued"} and got["held"] == 0
    assert got["results"] == 7 + got["states"].get("done", 0) == got["out"]["done"]
