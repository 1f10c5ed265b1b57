"""Ollama through its native API (``POST /api/chat``, ``stream: false``).

Why native and not Ollama's ``/v1``: only the native API honours ``num_ctx``, and Ollama's defaults
(temperature 0.8, random seed, unlimited output, a 4096-token context) would silently change the
experiment, so every option is sent explicitly (docs/architecture.md fact 6). One pooled ``requests.Session``
per engine; thread-safe, so the worker may overlap up to ``max_concurrent_requests`` calls (the
server must be started with ``OLLAMA_NUM_PARALLEL`` >= that number to really run them in parallel).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from config.schema import EvalConfig
from config.token_count import Counter, Messages, chars_estimate, plain_transcript, text_estimate
from workers.engines.base import EngineResult, GenerationParams, PermanentEngineError
from workers.engines.http_common import make_session, normalise_endpoint, request_json
from workers.engines.tokens import complete_usage

SERVICE = "Ollama"
NS = 1e-9
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def ollama_options(cfg: EvalConfig, params: GenerationParams) -> dict[str, Any]:
    """Every sampling option, explicitly: unset top_p/top_k mean "no filter" (1.0 / 0), as in the
    other engines, never Ollama's defaults (0.9 / 40)."""
    options: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p if params.top_p is not None else 1.0,
        "top_k": params.top_k if params.top_k is not None else 0,
        "min_p": 0.0,
        "num_predict": params.max_tokens,
        "stop": list(params.stop),
        "num_ctx": cfg.n_ctx,
    }
    if params.seed is not None:
        options["seed"] = params.seed
    return options


def timing_facts(body: dict[str, Any]) -> dict[str, Any]:
    """Ollama's nanosecond durations as seconds, plus tokens per second where both parts are known."""
    facts: dict[str, Any] = {}
    for key in DURATIONS:
        value = body.get(key)
        if isinstance(value, (int, float)):
            facts[key.replace("_duration", "_s")] = value * NS
    evals, eval_s = body.get("eval_count"), facts.get("eval_s")
    if isinstance(evals, int) and eval_s:
        facts["eval_tokens_per_s"] = evals / eval_s
    pevals, peval_s = body.get("prompt_eval_count"), facts.get("prompt_eval_s")
    if isinstance(pevals, int) and peval_s:
        facts["prompt_tokens_per_s"] = pevals / peval_s
    return facts


class OllamaEngine:
    name = "ollama"
    thread_safe = True

    def __init__(self, cfg: EvalConfig, model: str | None = None) -> None:
        if not cfg.local_endpoint:
            raise PermanentEngineError("local_endpoint is not set (e.g. http://127.0.0.1:11434)")
        self.cfg = cfg
        self.model = model or cfg.local_model or ""
        self.base_url = normalise_endpoint(cfg.local_endpoint)
        self.timeout_s = cfg.request_timeout_s
        self.session = make_session(cfg.max_concurrent_requests)
        self._embed_ok: bool | None = None  # learnt on first use: can /api/embed count for this model?

    # -- HTTP ---------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None, timeout_s: float | None = None) -> dict[str, Any]:
        return request_json(
            self.session, method, f"{self.base_url}{path}", service=SERVICE, model=self.model,
            timeout_s=timeout_s or self.timeout_s, payload=payload,
        )

    def tags(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """``GET /api/tags``: the pulled models (also the health check)."""
        return list(self._call("GET", "/api/tags", timeout_s=timeout_s).get("models") or [])

    def show(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """``POST /api/show``: details, parameters and ``model_info`` (context length, shape)."""
        return self._call("POST", "/api/show", {"model": self.model}, timeout_s=timeout_s)

    def ps(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """``GET /api/ps``: models loaded now (size, size_vram, expires_at)."""
        return list(self._call("GET", "/api/ps", timeout_s=timeout_s).get("models") or [])

    def facts(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "endpoint": self.base_url, "num_ctx": self.cfg.n_ctx,
                "keep_alive": self.cfg.keep_alive, "min_p": 0.0}

    # -- token counting ---------------------------------------------------------------------------
    def count_text(self, text: str) -> int:
        """Tokens of ``text`` counted by the server (``POST /api/embed`` returns ``prompt_eval_count``);
        falls back to chars/4 when the model cannot embed (remembered for this engine)."""
        if self._embed_ok is not False:
            try:
                body = self._call("POST", "/api/embed", {"model": self.model, "input": text, "truncate": False,
                                                          "keep_alive": self.cfg.keep_alive}, timeout_s=60.0)
                n = body.get("prompt_eval_count")
                if isinstance(n, int) and n > 0:
                    self._embed_ok = True
                    return n
            except Exception:  # noqa: BLE001 - counting is best effort
                pass
            self._embed_ok = False
        return text_estimate(text)

    def prompt_counter(self) -> Counter:
        def count(messages: Messages) -> int:
            framing = 4 * len(messages)
            n = self.count_text(plain_transcript(messages))
            return n + framing if self._embed_ok else chars_estimate(messages)

        return count

    # -- generation -------------------------------------------------------------------------------
    def _result(self, body: dict[str, Any], text: str, thinking: str | None, messages: Messages,
                latency: float) -> EngineResult:
        usage = complete_usage(body.get("prompt_eval_count"), body.get("eval_count"), messages, text,
                               counter=self.prompt_counter())
        facts = self.facts()
        facts.update(timing_facts(body))
        if usage.estimated:
            facts["usage_estimated"] = True  # survives into raw results (CONTRACT usage has 3 keys)
        if body.get("prompt_eval_count") is None:
            facts["prompt_cached"] = True  # Ollama omits the count when the whole prompt came from cache
        if thinking:
            facts["thinking"] = thinking
        if body.get("model"):
            facts["served_model"] = body["model"]
        return EngineResult(
            text=text,
            finish_reason=body.get("done_reason") or ("stop" if body.get("done") else None),
            usage=usage,
            request_id=f"ollama-{uuid.uuid4().hex}",
            latency_s=latency,
            engine=facts,
        )

    def _post_generation(self, path: str, params: GenerationParams, **fields: Any) -> tuple[dict[str, Any], float]:
        """One non-streaming generation request; (response body, latency in seconds)."""
        payload = {"model": self.model, **fields, "stream": False, "keep_alive": self.cfg.keep_alive,
                   "options": ollama_options(self.cfg, params)}
        start = time.perf_counter()
        body = self._call("POST", path, payload)
        return body, time.perf_counter() - start

    def generate(self, messages: list[dict[str, str]], params: GenerationParams) -> EngineResult:
        body, latency = self._post_generation("/api/chat", params, messages=messages)
        message = body.get("message") or {}
        return self._result(body, message.get("content") or "", message.get("thinking"), messages, latency)

    def generate_raw(self, prompt: str, params: GenerationParams) -> EngineResult:
        """Completion-style models: ``POST /api/generate`` with ``raw: true`` (no chat template)."""
        body, latency = self._post_generation("/api/generate", params, prompt=prompt, raw=True)
        messages = [{"role": "user", "content": prompt}]
        return self._result(body, body.get("response") or "", body.get("thinking"), messages, latency)

    def close(self) -> None:
        self.session.close()

