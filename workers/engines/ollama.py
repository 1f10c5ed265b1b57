"""Ollama through its native API (``POST /api/chat``, ``stream: false``).

Why native and not Ollama's ``/v1``: only the native API honours ``num_ctx``, and Ollama's defaults
(temperature 0.8, random seed, unlimited output, a 4096-token context) would silently change the
experiment, so every option is sent explicitly (docs/architecture.md fact 6). One pooled ``requests.Session``
per engine; thread-safe, so the worker may overlap up to ``max_concurrent_requests`` calls (the
server must be started with ``OLLAMA_NUM_PARALLEL`` >= that number to really run them in parallel).
Unset (auto) it is 1: Ollama's API does not report the slots it runs with.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from config.checks import FAIL, OK, WARN, Check, EngineFacts
from config.engines import OLLAMA_DEFAULT_ENDPOINT
from config.sampler import NEUTRAL_SAMPLER
from config.schema import EvalConfig
from config.token_count import Counter, Messages, chars_estimate, plain_transcript, text_estimate
from config.wording import plural
from workers.engines.base import EngineError, EngineResult, GenerationParams
from workers.engines.http_common import PREFLIGHT_TIMEOUT_S, HttpEngine, pull_hint
from workers.engines.tokens import complete_usage

SERVICE = "Ollama"
DOCTOR_TIMEOUT_S = 3.0
NS = 1e-9
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def ollama_options(cfg: EvalConfig, params: GenerationParams) -> dict[str, Any]:
    """Every sampling option, explicitly: the neutral sampler of config/sampler.py (unset top_p/top_k
    mean "no filter", no penalties), never Ollama's defaults (0.9 / 40 / repeat_penalty 1.1); ``stop``
    only when set (an empty list would replace the Modelfile's stop words)."""
    sampling = params.sampling()
    options: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": sampling["top_p"],
        "top_k": sampling["top_k"],
        **NEUTRAL_SAMPLER,
        "num_predict": params.max_tokens,
        "num_ctx": cfg.n_ctx,
    }
    if params.stop:
        options["stop"] = list(params.stop)
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


class OllamaEngine(HttpEngine):
    name = "ollama"
    SERVICE = SERVICE
    ENDPOINT_EXAMPLE = OLLAMA_DEFAULT_ENDPOINT

    def __init__(self, cfg: EvalConfig, model: str | None = None) -> None:
        super().__init__(cfg, model)
        self._embed_ok: bool | None = None  # learnt on first use: can /api/embed count for this model?

    # -- HTTP ---------------------------------------------------------------------------------------

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

    # -- what the engine knows about itself outside generation (preflight, cache, doctor) -----------
    @classmethod
    def preflight(cls, cfg: EvalConfig, model: str) -> tuple[list[Check], EngineFacts]:
        """The server answers, the model is pulled, n_ctx fits its trained context; the server's own
        tokenizer (``/api/embed``) counts the prompts for the context check."""
        facts = EngineFacts()
        engine = cls(cfg, model)
        try:
            try:
                tags = engine.tags(timeout_s=PREFLIGHT_TIMEOUT_S)
            except EngineError as exc:
                return [Check("engine", FAIL, str(exc))], facts
            checks = [Check("engine", OK, f"Ollama at {engine.base_url} answers ({plural(len(tags), 'model')} pulled)")]
            names = {str(t.get("name")) for t in tags} | {str(t.get("model")) for t in tags}
            if model not in names and f"{model}:latest" not in names:
                checks.append(Check("model", FAIL, pull_hint("Ollama", model)))
                return checks, facts
            checks.append(Check("model", OK, f"{model} is pulled"))
            checks += num_parallel_checks(cfg.static_in_flight())
            try:
                info = engine.show(timeout_s=PREFLIGHT_TIMEOUT_S * 3).get("model_info") or {}
            except EngineError as exc:
                checks.append(Check("context", WARN, f"cannot read model facts from /api/show: {exc}"))
                return checks, facts
            trained = context_from_info(info)
            facts.context_limit = min(cfg.n_ctx, trained) if trained else cfg.n_ctx
            facts.context_source = f"num_ctx {cfg.n_ctx}" + (f", model trained for {trained}" if trained else "")
            if trained and cfg.n_ctx > trained:
                checks.append(Check("n_ctx", WARN, f"n_ctx {cfg.n_ctx} exceeds {model}'s trained context {trained}"))
            facts.counter = engine.prompt_counter()
            facts.counter_name = "Ollama /api/embed, else ~4 characters per token"
            return checks, facts
        finally:
            engine.close()

    @classmethod
    def cache_identity(cls, cfg: EvalConfig, model: str) -> tuple[str, dict[str, Any]] | None:
        """(model id, settings) for the response cache: the model's digest, or None when not pulled."""
        digest = ollama_digest(cfg, model)
        # the sampler is part of the identity: answers from before it was sent (Ollama's repeat_penalty
        # 1.1) must miss
        return None if digest is None else (digest, {"num_ctx": cfg.n_ctx, "sampler": NEUTRAL_SAMPLER})

    @classmethod
    def doctor_section(cls, cfg: EvalConfig, redact: Callable[[str | None], str | None]) -> dict[str, Any]:
        """The doctor report's ``ollama`` object: the server at the configured endpoint when the run uses
        Ollama, else at its default address. ``redact`` strips credentials from a URL."""
        import requests

        from producer.host.env import user_env_value  # lazy: only the doctor report reads the user's settings

        ours = cfg.local_engine == cls.name
        base = ((cfg.local_endpoint if ours else None) or OLLAMA_DEFAULT_ENDPOINT).rstrip("/")
        out: dict[str, Any] = {"endpoint": redact(base), "version": None, "error": None,
                               "num_parallel_env": os.environ.get("OLLAMA_NUM_PARALLEL"),
                               "num_parallel_user_setting": user_env_value("OLLAMA_NUM_PARALLEL")}
        try:
            resp = requests.get(f"{base}/api/version", timeout=DOCTOR_TIMEOUT_S)
            resp.raise_for_status()
            out["version"] = str(resp.json().get("version"))
        except Exception as exc:  # noqa: BLE001 - not running is a fact, not an error of the report
            out["error"] = f"no answer from {redact(base)}/api/version ({type(exc).__name__})"
        return out


def num_parallel_checks(in_flight: int) -> list[Check]:
    """``max_concurrent_requests`` against OLLAMA_NUM_PARALLEL as this process sees it (environment,
    else the Windows user setting the tray app reads). Why this way: Ollama's API does not report its
    parallel slots, so the setting the server most likely started with is the best that can be known."""
    if in_flight <= 1:
        return []
    from producer.host.env import user_env_value  # lazy: only preflight reads the user's settings

    raw = os.environ.get("OLLAMA_NUM_PARALLEL") or user_env_value("OLLAMA_NUM_PARALLEL")
    known = int(raw.strip()) if raw and raw.strip().isdigit() else None
    if known is not None and known >= in_flight:
        return [Check("parallel", OK, f"OLLAMA_NUM_PARALLEL {known} >= max_concurrent_requests {in_flight}")]
    said = f"OLLAMA_NUM_PARALLEL is {known}" if known is not None else "OLLAMA_NUM_PARALLEL is not set here (default 1)"
    return [Check("parallel", WARN, f"max_concurrent_requests {in_flight} but {said}: the extra requests only wait "
                                    f"inside Ollama (latency doubles, throughput stays flat); start it with "
                                    f"OLLAMA_NUM_PARALLEL={in_flight} (Ollama's API does not report the value "
                                    "it runs with)")]


def context_from_info(info: dict[str, Any]) -> int | None:
    """The trained context length from ``/api/show``'s ``model_info`` (``<arch>.context_length``)."""
    arch = info.get("general.architecture")
    value = info.get(f"{arch}.context_length") if arch else None
    if value is None:
        value = next((v for k, v in info.items() if k.endswith(".context_length")), None)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def ollama_digest(cfg: EvalConfig, model: str) -> str | None:
    """The model's digest from ``GET /api/tags`` (``models[].digest``; Ollama's documented API), or None
    when the model is not pulled. ``llama3`` and ``llama3:latest`` are the same model."""
    engine = OllamaEngine(cfg, model)
    try:
        tags = engine.tags()
    finally:
        engine.close()
    names = {model, model if ":" in model else f"{model}:latest"}
    for m in tags:
        if (m.get("name") in names or m.get("model") in names) and m.get("digest"):
            return str(m["digest"])
    return None
