"""The Ollama engine against a real HTTP server that answers as Ollama's documented API does."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.schema import EvalConfig
from tests.support.offline_config import offline_config_dict
from tests.support.servers.fake_ollama import FakeModel, FakeOllama, FakeOllamaServer, Step
from workers.engines.base import GenerationParams, PermanentEngineError, TransientEngineError
from workers.engines.http_common import EngineUnreachableError, ModelNotFoundError
from workers.engines.ollama import OllamaEngine
from workers.engines.registry import create_engine

MESSAGES = [{"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is the capital of France?"}]


def ollama_cfg(tmp_path: Path, url: str, **overrides) -> EvalConfig:
    settings = {"local_engine": "ollama", "local_endpoint": url, "local_model": "smollm2:135m", "n_ctx": 3072,
                "keep_alive": "7m", "request_timeout_s": 5.0, **overrides}
    raw = offline_config_dict(tmp_path, **settings)
    return EvalConfig(**raw)


@pytest.fixture
def server() -> Iterator[FakeOllamaServer]:
    with FakeOllamaServer(FakeOllama(models=[FakeModel("smollm2:135m"), FakeModel("qwen3:0.6b", family="qwen3")])) as srv:
        yield srv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chat_sends_every_option_explicitly(tmp_path, server):
    engine = create_engine(ollama_cfg(tmp_path, server.url + "/"))
    assert isinstance(engine, OllamaEngine) and engine.thread_safe
    result = engine.generate(MESSAGES, GenerationParams(max_tokens=32, temperature=0.0, top_p=0.9, top_k=40,
                                                        stop=("\n\n",), seed=7))
    method, path, body = server.state.requests[-1]
    assert (method, path) == ("POST", "/api/chat")
    assert body == {
        "model": "smollm2:135m",
        "messages": MESSAGES,
        "stream": False,
        "keep_alive": "7m",
        "options": {"temperature": 0.0, "top_p": 0.9, "top_k": 40, "min_p": 0.0, "repeat_penalty": 1.0,
                    "presence_penalty": 0.0, "frequency_penalty": 0.0, "num_predict": 32,
                    "stop": ["\n\n"], "num_ctx": 3072, "seed": 7},
    }
    assert result.text == "Paris is the capital of France."
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.total_tokens) == (8, 6, 14)
    assert result.usage.estimated is False
    facts = result.engine
    assert facts["name"] == "ollama" and facts["model"] == "smollm2:135m" and facts["num_ctx"] == 3072
    assert facts["total_s"] == pytest.approx(5.191566416)
    assert facts["eval_s"] == pytest.approx(4.799921)
    assert facts["load_s"] == pytest.approx(0.002154458)
    assert facts["eval_tokens_per_s"] == pytest.approx(6 / 4.799921)
    assert "prompt_cached" not in facts and "usage_estimated" not in facts
    engine.close()


def test_unset_sampling_means_no_filter_and_no_seed(tmp_path, server):
    engine = OllamaEngine(ollama_cfg(tmp_path, server.url), "smollm2:135m")
    engine.generate(MESSAGES, GenerationParams(max_tokens=8, temperature=0.7))
    options = server.state.requests[-1][2]["options"]
    # Ollama's own repeat_penalty is 1.1 (over the last 64 tokens); llama.cpp's is 1.0: sent, so that
    # greedy answers agree across engines. No stop list unless the config sets one: an empty list would
    # replace the Modelfile's own stop words.
    assert options == {"temperature": 0.7, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0,
                       "presence_penalty": 0.0, "frequency_penalty": 0.0, "num_predict": 8, "num_ctx": 3072}


def test_length_limit_maps_done_reason(tmp_path, server):
    engine = OllamaEngine(ollama_cfg(tmp_path, server.url))
    result = engine.generate(MESSAGES, GenerationParams(max_tokens=2, temperature=0.0))
    assert result.finish_reason == "length"
    assert result.text == "Paris is"
    assert result.usage.completion_tokens == 2


def test_cached_prompt_is_estimated_not_zero(tmp_path, server):
    server.state.script.append(Step(omit_prompt_eval_count=True))
    engine = OllamaEngine(ollama_cfg(tmp_path, server.url))
    result = engine.generate(MESSAGES, GenerationParams(max_tokens=32, temperature=0.0))
    assert result.usage.estimated is True
    assert result.usage.prompt_tokens and result.usage.prompt_tokens > 0
    assert result.usage.completion_tokens == 6
    assert result.engine["prompt_cached"] is True and result.engine["usage_estimated"] is True
    # the chat model cannot embed: the server was asked once, then the chars/4 fallback is used
    embeds = [r for r in server.state.requests if r[1] == "/api/embed"]
    assert len(embeds) == 1
    from config.token_count import chars_estimate
    assert result.usage.prompt_tokens == chars_estimate(MESSAGES)


def test_cached_prompt_counted_by_server_when_it_can(tmp_path):
    state = FakeOllama(models=[FakeModel("smollm2:135m", embeddings=True)])
    with FakeOllamaServer(state) as srv:
        state.script.append(Step(omit_prompt_eval_count=True))
        result = OllamaEngine(ollama_cfg(tmp_path, srv.url)).generate(MESSAGES, GenerationParams(8, 0.0))
        embed = [r for r in state.requests if r[1] == "/api/embed"][0][2]
    assert embed["model"] == "smollm2:135m" and embed["truncate"] is False
    # server count of "system: Answer briefly.\nuser: What is ..." (10 words) + 4 framing tokens per message
    assert result.usage.prompt_tokens == 10 + 8
    assert result.usage.estimated is True


def test_thinking_is_kept_out_of_the_answer(tmp_path, server):
    server.state.script.append(Step(text="Paris", thinking="The user asks about France."))
    result = OllamaEngine(ollama_cfg(tmp_path, server.url)).generate(MESSAGES, GenerationParams(16, 0.0))
    assert result.text == "Paris"
    assert result.engine["thinking"] == "The user asks about France."


def test_raw_prompt_mode_uses_generate(tmp_path, server):
    engine = OllamaEngine(ollama_cfg(tmp_path, server.url))
    result = engine.generate_raw("Q: capital of France?\nA:", GenerationParams(max_tokens=3, temperature=0.0, seed=1))
    method, path, body = server.state.requests[-1]
    assert path == "/api/generate"
    assert body["raw"] is True and body["stream"] is False and body["prompt"] == "Q: capital of France?\nA:"
    assert body["options"]["num_predict"] == 3 and body["options"]["seed"] == 1
    assert result.text == "Paris is the" and result.finish_reason == "length"


def test_unknown_model_is_permanent_with_pull_hint(tmp_path, server):
    engine = OllamaEngine(ollama_cfg(tmp_path, server.url), "llama3.1:8b")
    with pytest.raises(ModelNotFoundError, match=r"model llama3.1:8b is not pulled: run `ollama pull llama3.1:8b`"):
        engine.generate(MESSAGES, GenerationParams(8, 0.0))


def test_server_error_is_transient(tmp_path, server):
    server.state.script.append(Step(status=500, error="llama runner process has terminated: exit status 2"))
    engine = OllamaEngine(ollama_cfg(tmp_path, server.url))
    with pytest.raises(TransientEngineError, match="HTTP 500: llama runner process has terminated"):
        engine.generate(MESSAGES, GenerationParams(8, 0.0))
    assert engine.generate(MESSAGES, GenerationParams(8, 0.0)).text  # the next request succeeds


@pytest.mark.parametrize("status,kind", [(429, TransientEngineError), (408, TransientEngineError),
                                         (400, PermanentEngineError), (503, TransientEngineError)])
def test_status_classes(tmp_path, server, status, kind):
    server.state.script.append(Step(status=status, error="nope"))
    with pytest.raises(kind) as info:
        OllamaEngine(ollama_cfg(tmp_path, server.url)).generate(MESSAGES, GenerationParams(8, 0.0))
    assert (status == 400) == (not isinstance(info.value, TransientEngineError))


def test_slow_answer_times_out_as_transient(tmp_path, server):
    server.state.script.append(Step(delay_s=1.5))
    engine = OllamaEngine(ollama_cfg(tmp_path, server.url, request_timeout_s=0.3))
    with pytest.raises(TransientEngineError, match=r"no answer within 0.3 s"):
        engine.generate(MESSAGES, GenerationParams(8, 0.0))


def test_connection_refused_says_how_to_start(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    engine = OllamaEngine(ollama_cfg(tmp_path, url))
    with pytest.raises(EngineUnreachableError) as info:
        engine.generate(MESSAGES, GenerationParams(8, 0.0))
    assert str(info.value) == f"cannot reach Ollama at {url}: start it with `ollama serve`"
    assert isinstance(info.value, TransientEngineError)


def test_tags_show_ps(tmp_path, server):
    engine = OllamaEngine(ollama_cfg(tmp_path, server.url))
    assert [t["name"] for t in engine.tags()] == ["smollm2:135m", "qwen3:0.6b"]
    assert engine.ps() == []
    assert engine.show()["model_info"]["llama.context_length"] == 8192
    engine.generate(MESSAGES, GenerationParams(4, 0.0))
    assert [m["name"] for m in engine.ps()] == ["smollm2:135m"]


def test_one_engine_overlaps_requests_on_threads(tmp_path, server):
    """thread_safe: the pooled session serves concurrent calls (each slow answer takes 0.4 s)."""
    server.state.script.extend(Step(delay_s=0.4) for _ in range(4))
    engine = OllamaEngine(ollama_cfg(tmp_path, server.url, max_concurrent_requests=4))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(engine.generate(MESSAGES, GenerationParams(8, 0.0)).text))
               for _ in range(4)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert time.perf_counter() - start < 1.4  # serial would be >= 1.6 s


@pytest.mark.realmodel
def test_answers_from_the_real_smollm2(tmp_path):
    """Through the Ollama API shape, the answer comes from the real model and honours num_predict."""
    from tests.support.servers.fake_ollama import smollm2_responder

    state = FakeOllama(models=[FakeModel("smollm2:135m")], responder=smollm2_responder())
    with FakeOllamaServer(state) as srv:
        engine = OllamaEngine(ollama_cfg(tmp_path, srv.url, request_timeout_s=120.0))
        ask = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
        first = engine.generate(ask, GenerationParams(max_tokens=16, temperature=0.0, seed=1))
        second = engine.generate(ask, GenerationParams(max_tokens=16, temperature=0.0, seed=1))
        short = engine.generate([{"role": "user", "content": "Tell me a long story."}], GenerationParams(3, 0.0))
    assert "paris" in first.text.lower() and first.text == second.text
    assert first.usage.prompt_tokens > 10 and not first.usage.estimated
    assert short.finish_reason == "length" and short.usage.completion_tokens == 3


def test_a_busy_server_is_retried_no_sooner_than_its_retry_after(tmp_path, server):
    """A 429 with ``Retry-After: 2`` (issue 30, item 7): the queue waited 0.24 s before."""
    from workers.inference import retry_delay_s

    server.state.script = [Step(status=429, error="server busy, please try again", retry_after="2")]
    cfg = ollama_cfg(tmp_path, server.url, retry_backoff_s=0.01)
    engine = OllamaEngine(cfg, "smollm2:135m")
    with pytest.raises(TransientEngineError) as caught:
        engine.generate(MESSAGES, GenerationParams(max_tokens=8, temperature=0.0))
    assert caught.value.retry_after == 2.0
    assert retry_delay_s(cfg, 1, caught.value) == 2.0
    assert retry_delay_s(cfg, 1, TransientEngineError("no header")) == 0.01
