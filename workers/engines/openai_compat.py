"""OpenAI-compatible chat servers: llama.cpp's ``llama-server``, llama-cpp-python's
``python -m llama_cpp.server``, LM Studio, vLLM (``POST {endpoint}/v1/chat/completions``).

Why: these servers are how users scale past one in-process model (several slots, bigger GPUs).
Optional API key: the environment variable ``OPENAI_COMPAT_API_KEY`` (sent as a Bearer token, never
logged or written). llama.cpp's ``timings`` (``cache_n`` cached prompt tokens, ``prompt_n``,
``predicted_per_second``...) are kept in the engine facts when the server sends them.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from config.checks import FAIL, OK, WARN, Check, EngineFacts
from config.engines import engine_spec
from config.schema import MAX_IN_FLIGHT, EvalConfig
from workers.engines.base import EngineError, EngineResult, GenerationParams, PermanentEngineError
from workers.engines.http_common import PREFLIGHT_TIMEOUT_S, HttpEngine
from workers.engines.tokens import complete_usage

SERVICE = "OpenAI-compatible server"
API_KEY_ENV = engine_spec("openai_compat").key_env or ""  # its registry row names it
TIMING_KEYS = ("cache_n", "prompt_n", "prompt_ms", "prompt_per_second", "predicted_n", "predicted_ms",
               "predicted_per_second")


def chat_payload(model: str, messages: list[dict[str, str]], params: GenerationParams) -> dict[str, Any]:
    """The request body: unset top_p/top_k mean "no filter" as in every engine. ``top_k``/``min_p``
    are extensions that llama.cpp and vLLM accept and OpenAI-strict servers ignore."""
    return {"model": model, "messages": messages, **params.sampling(), "stream": False}


def timing_facts(body: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp's ``timings`` object (and OpenAI's ``prompt_tokens_details.cached_tokens``) as facts."""
    facts: dict[str, Any] = {}
    timings = body.get("timings")
    if isinstance(timings, dict):
        for key in TIMING_KEYS:
            if key in timings:
                facts[key] = timings[key]
    details = (body.get("usage") or {}).get("prompt_tokens_details") or {}
    if isinstance(details, dict) and details.get("cached_tokens") is not None:
        facts["cached_tokens"] = details["cached_tokens"]
    elif "cache_n" in facts:
        facts["cached_tokens"] = facts["cache_n"]
    return facts


class OpenAICompatEngine(HttpEngine):
    name = "openai_compat"
    SERVICE = SERVICE
    ENDPOINT_EXAMPLE = "http://127.0.0.1:8080"

    def headers(self) -> dict[str, str]:
        """The optional API key as a Bearer token (never logged or written)."""
        key = os.environ.get(API_KEY_ENV, "").strip()
        return {"Authorization": f"Bearer {key}"} if key else {}

    def models(self, timeout_s: float = 10.0) -> list[str]:
        """``GET /v1/models`` ids (also the health check)."""
        data = self._call("GET", "/v1/models", timeout_s=timeout_s).get("data") or []
        return [str(m.get("id")) for m in data if isinstance(m, dict)]

    def facts(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "endpoint": self.base_url, "min_p": 0.0}

    def props(self, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> dict[str, Any]:
        """llama-server's ``GET /props`` (``total_slots``, ``default_generation_settings.n_ctx`` per
        slot); {} where the server has none (llama-cpp-python's server, vLLM, LM Studio) or it fails."""
        try:
            return self._call("GET", "/props", timeout_s=timeout_s)
        except EngineError:
            return {}

    def resolve_concurrency(self) -> int:
        """Auto (``max_concurrent_requests`` unset) matches llama-server's slots, read once here."""
        if self.cfg.max_concurrent_requests is not None:
            return self.cfg.max_concurrent_requests
        # a server that cannot answer this small GET within a request's timeout is hung: 1, no longer wait
        return self.cfg.in_flight_for(reported_slots(self.props(min(PREFLIGHT_TIMEOUT_S, self.cfg.request_timeout_s))))

    def generate(self, messages: list[dict[str, str]], params: GenerationParams) -> EngineResult:
        start = time.perf_counter()
        body = self._call("POST", "/v1/chat/completions", chat_payload(self.model, messages, params))
        latency = time.perf_counter() - start
        choices = body.get("choices") or []
        if not choices:
            raise PermanentEngineError(f"{SERVICE} at {self.base_url}: answer has no choices")
        choice = choices[0]
        text = (choice.get("message") or {}).get("content") or ""
        usage_body = body.get("usage") or {}
        usage = complete_usage(usage_body.get("prompt_tokens"), usage_body.get("completion_tokens"), messages, text)
        facts = self.facts()
        facts.update(timing_facts(body))
        if usage.estimated:
            facts["usage_estimated"] = True  # survives into raw results (CONTRACT usage has 3 keys)
        reasoning = (choice.get("message") or {}).get("reasoning_content")
        if reasoning:
            facts["thinking"] = reasoning
        if body.get("system_fingerprint"):
            facts["system_fingerprint"] = body["system_fingerprint"]
        return EngineResult(
            text=text,
            finish_reason=choice.get("finish_reason"),
            usage=usage,
            request_id=str(body.get("id") or f"oai-{uuid.uuid4().hex}"),
            latency_s=latency,
            engine=facts,
        )

    @classmethod
    def preflight(cls, cfg: EvalConfig, model: str) -> tuple[list[Check], EngineFacts]:
        """The server answers and serves the model; its context per slot (``max_model_len`` or
        llama-server's ``/props``) bounds the context check."""
        facts = EngineFacts()
        engine = cls(cfg, model)
        try:
            try:
                body = engine._call("GET", "/v1/models", timeout_s=PREFLIGHT_TIMEOUT_S)
            except EngineError as exc:
                return [Check("engine", FAIL, str(exc))], facts
            data = [m for m in body.get("data") or [] if isinstance(m, dict)]
            ids = [str(m.get("id")) for m in data]
            checks = [Check("engine", OK, f"server at {engine.base_url} answers (models: {', '.join(ids) or 'none listed'})")]
            if ids and model not in ids:
                checks.append(Check("model", WARN, f"{model} is not listed by /v1/models (servers with one model "
                                                   "usually ignore the name; LM Studio and vLLM do not)"))
            else:
                checks.append(Check("model", OK, f"{model} is served"))
            props = engine.props()
            checks += slot_checks(cfg.max_concurrent_requests, props.get("total_slots"))
            limit = next((int(m["max_model_len"]) for m in data if m.get("id") == model and m.get("max_model_len")), None)
            if limit is None:
                limit = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
            if limit:
                facts.context_limit = int(limit)
                facts.context_source = "the server's context per slot"
            return checks, facts
        finally:
            engine.close()


def reported_slots(props: dict[str, Any]) -> int | None:
    """``total_slots`` from a ``/props`` answer when it is a positive integer, else None."""
    slots = props.get("total_slots") if isinstance(props, dict) else None
    return slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else None


def slot_checks(in_flight: int | None, slots: Any) -> list[Check]:
    """``max_concurrent_requests`` against llama-server's parallel slots (``/props`` ``total_slots``).

    Why: requests beyond the slots only wait inside the server (latency doubles, throughput stays
    flat); fewer requests than slots leave slots idle. Nothing when the server does not say. Unset
    (auto): the engine takes the slots itself."""
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
        if in_flight is None:
            return [Check("parallel", OK, "max_concurrent_requests auto: the server does not report its slots "
                                          "(no GET /props total_slots), so 1 request in flight")]
        return []
    if in_flight is None:
        return [Check("parallel", OK, f"max_concurrent_requests auto: {min(slots, MAX_IN_FLIGHT)} in flight, "
                                      f"the server's {slots} slot(s) (GET /props total_slots)")]
    if in_flight > slots:
        return [Check("parallel", WARN, f"max_concurrent_requests {in_flight} exceeds the server's {slots} slot(s) "
                                        f"(GET /props total_slots): the extra requests only wait inside it; set "
                                        f"max_concurrent_requests: {slots}, or start llama-server with --parallel "
                                        f"{in_flight}")]
    if in_flight < slots:
        return [Check("parallel", WARN, f"the server has {slots} slots (GET /props total_slots) but "
                                        f"max_concurrent_requests is {in_flight}: set max_concurrent_requests: "
                                        f"{slots} to use them all")]
    return [Check("parallel", OK, f"max_concurrent_requests {in_flight} matches the server's {slots} slots")]
