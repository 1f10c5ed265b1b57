"""In-process llama.cpp with ``n_parallel`` P > 1: P sequences decoded together in one context.

Why a second engine class: the sequential ``LlamaCppEngine`` runs one request at a time through
``Llama.create_chat_completion``; batching needs a context with ``n_seq_max`` P and a unified KV cache,
which ``Llama()`` does not expose in llama-cpp-python 0.3.36. This engine keeps the ``Llama`` object
for what must not change (chat template, tokenizer, stop strings: its own ``create_chat_completion``
runs on a stand-in whose ``create_completion`` hands the prompt tokens to the scheduler), and builds
the batched context with the low-level API (``llama_cpp_slots.SlotScheduler``). The ``Llama`` itself
gets a minimal context: the cache that matters is the batched one.

``thread_safe`` with ``concurrency`` 2P: the inference loop runs 2P threads, each calling ``generate``;
P requests decode and up to P wait ready in the scheduler, so a finished request's slot takes the
next one before the next step (continuous batching) while its thread records the answer.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from config.llama_cpp_import import import_llama_cpp
from config.schema import EvalConfig
from workers.engines.base import EngineResult, GenerationParams, PermanentEngineError, Usage
from workers.engines.llama_cpp_engine import cached, engine_model, llama_kwargs, model_settings, new_llama
from workers.engines.llama_cpp_slots import Job, SlotScheduler

BATCHING = "llama.cpp in process: continuous batching, unified KV cache, shared prefixes copied"
TOKENIZER_N_CTX = 256  # the Llama object's own context is only a placeholder (llama.cpp's minimum)


def batched_supported(llama_cpp: Any) -> bool:
    """Whether this llama-cpp-python has what batching needs (``llama_memory_*``, ``kv_unified``)."""
    fields = {name for name, _ in getattr(llama_cpp.llama_context_params, "_fields_", [])}
    return "kv_unified" in fields and hasattr(llama_cpp, "llama_memory_seq_cp") and hasattr(llama_cpp, "llama_get_memory")


def batched_context(llm: Any, n_ctx: int, n_parallel: int) -> tuple[Any, int]:
    """(a llama.cpp context for ``n_parallel`` sequences sharing one unified KV cache of ``n_ctx`` cells,
    its batch size), with ``llm``'s other context settings; ``tools/bench_batched.py`` builds the same."""
    from llama_cpp._internals import LlamaContext

    params = import_llama_cpp().llama_context_params.from_buffer_copy(llm.context_params)
    n_batch = min(n_ctx, 512)  # what Llama(n_ctx=...) uses, so one slot prefills in the same chunks
    params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, n_batch, n_batch
    params.n_seq_max, params.kv_unified = n_parallel, True
    try:
        return LlamaContext(model=llm._model, params=params, verbose=False), n_batch
    except ValueError as exc:
        raise PermanentEngineError(f"cannot create a llama.cpp context with n_ctx {n_ctx} and n_parallel "
                                   f"{n_parallel}: {exc}") from None


class BatchedRuntime:
    """The loaded model, its batched context and the scheduler: one cached object, freed together."""

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        llama_cpp = import_llama_cpp()
        if not batched_supported(llama_cpp):
            raise PermanentEngineError("n_parallel > 1 needs a newer llama-cpp-python (with llama_memory_* and "
                                       "kv_unified; 0.3.36 is tested): upgrade it or set n_parallel: 1")
        n_ctx, n_parallel = settings["n_ctx"], settings["n_parallel"]
        self.llm = new_llama(path, {**llama_kwargs(llama_cpp, path, settings), "n_ctx": TOKENIZER_N_CTX})
        try:
            if llama_cpp.llama_model_is_recurrent(self.llm.model) or llama_cpp.llama_model_is_hybrid(self.llm.model):
                raise PermanentEngineError(f"n_parallel > 1 needs a transformer model; {path.name} is recurrent: "
                                           "set n_parallel: 1")
            self.ctx, n_batch = batched_context(self.llm, n_ctx, n_parallel)
            self.scheduler = SlotScheduler(self.llm, self.ctx, n_parallel, n_batch)
        except BaseException:
            self.llm.close()
            raise
        self._seed_lock = threading.Lock()

    def complete(self, prompt: Any, kw: dict[str, Any]) -> tuple[dict[str, Any], Job]:
        """``Llama._create_completion`` (non-streaming) through the scheduler: same prompt tokens,
        max_tokens cut, seed rule, stop strings and finish reasons."""
        llm, n_ctx = self.llm, self.scheduler.n_ctx
        tokens = list(prompt) if not isinstance(prompt, str) else self._tokens_of(prompt)
        if len(tokens) >= n_ctx:
            raise ValueError(f"the prompt ({len(tokens)} tokens) does not fit the context: n_ctx {n_ctx} is shared by "
                             f"n_parallel {self.scheduler.n_parallel} sequences; raise n_ctx")
        max_tokens = kw.get("max_tokens")
        if max_tokens is None or max_tokens <= 0:
            max_tokens = n_ctx - len(tokens)
        max_tokens = max_tokens if max_tokens + len(tokens) < n_ctx else n_ctx - len(tokens)
        stop = kw.get("stop")
        stop = stop if isinstance(stop, list) else [stop] if isinstance(stop, str) else []
        with self._seed_lock:  # Llama's rule: the request's seed, else one drawn from the last seed
            seed = kw.get("seed")
            llm.set_seed(seed if seed is not None else random.Random(llm._seed).randint(0, 2**32))
            seed = llm._seed
        sampling = {"temperature": kw.get("temperature", 0.8), "top_k": kw.get("top_k", 40),
                    "top_p": kw.get("top_p", 0.95), "min_p": kw.get("min_p", 0.05),
                    "typical_p": kw.get("typical_p", 1.0), "repeat_penalty": kw.get("repeat_penalty", 1.0),
                    "frequency_penalty": kw.get("frequency_penalty", 0.0),
                    "presence_penalty": kw.get("presence_penalty", 0.0), "seed": seed}
        job = self.scheduler.submit(Job(tokens, max_tokens, sampling, [s.encode("utf-8") for s in stop]))
        out = {
            "id": f"cmpl-{uuid.uuid4()}", "object": "text_completion", "created": int(time.time()),
            "model": kw.get("model") or llm.model_path,
            "choices": [{"text": job.text.decode("utf-8", errors="ignore"), "index": 0, "logprobs": None,
                         "finish_reason": job.finish_reason}],
            "usage": {"prompt_tokens": len(tokens), "completion_tokens": len(job.completion),
                      "total_tokens": len(tokens) + len(job.completion)},
        }
        return out, job

    def _tokens_of(self, prompt: str) -> list[int]:
        """A text prompt as ``_create_completion`` tokenizes it (chat handlers pass tokens already)."""
        llm, model = self.llm, self.llm._model
        bos = model.token_cls() if model.token_cls() != -1 else llm.token_bos()
        sep = model.token_sep()
        eos = sep if sep != -1 else llm.token_eos()
        head = [bos] if model.add_bos_token() and bos != -1 else []
        tail = [eos] if model.add_eos_token() or sep != -1 else []
        return head + (llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True) if prompt else []) + tail

    def close(self) -> None:
        self.scheduler.close()
        self.ctx.close()
        self.llm.close()


class _Stand:
    """The ``Llama`` as its chat handler sees it, except that ``create_completion`` goes to the slots."""

    def __init__(self, runtime: BatchedRuntime) -> None:
        self._runtime = runtime
        self.job: Job | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime.llm, name)

    def create_completion(self, prompt: Any, **kw: Any) -> dict[str, Any]:
        if kw.get("stream") or kw.get("grammar") is not None or kw.get("logprobs") is not None:
            raise ValueError("the batched engine supports plain chat completions only (no stream, grammar, logprobs)")
        out, self.job = self._runtime.complete(prompt, kw)
        return out


class BatchedLlamaCppEngine:
    name = "llama_cpp"
    thread_safe = True

    def __init__(self, cfg: EvalConfig, model: str | None = None) -> None:
        self.model_ref, self.model_path = engine_model(cfg, model)
        self.settings = {**model_settings(cfg), "n_parallel": cfg.n_parallel}
        # the inference loop runs this many threads into ``generate``: P decode, and up to P more wait in
        # the scheduler with their prompts tokenized, so a slot that frees is refilled before the next
        # step while its own thread records the answer (a ledger write) and fetches its next request
        self.concurrency = 2 * cfg.n_parallel
        key = ("batched", str(self.model_path), *sorted(self.settings.items()))
        self.runtime, loaded = cached(key, lambda: BatchedRuntime(self.model_path, self.settings))
        self.llm = self.runtime.llm
        self.load_facts = {"model_path": str(self.model_path), **self.settings} if loaded else None

    def facts(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_ref, "model_path": str(self.model_path), "min_p": 0.0,
                **self.settings, "batching": BATCHING}

    def stats(self) -> dict[str, int]:
        """Counters since the model was loaded: requests, prompt tokens, prefix tokens reused (not
        prefilled), prefix copies between slots, decode steps, sequences decoded, cache evictions."""
        return dict(self.runtime.scheduler.stats)

    def generate(self, messages: list[dict[str, str]], params: GenerationParams) -> EngineResult:
        from llama_cpp import Llama

        stand = _Stand(self.runtime)
        start = time.perf_counter()
        try:
            out = Llama.create_chat_completion(stand, messages=messages, **params.sampling())
        except ValueError as exc:  # e.g. prompt longer than n_ctx: retrying cannot help
            raise PermanentEngineError(" ".join(str(exc).split())) from None
        latency = time.perf_counter() - start
        choice, usage, job = out["choices"][0], out.get("usage") or {}, stand.job
        facts = self.facts()
        if job is not None:
            facts.update(prompt_tokens_reused=job.reused, prefix_copied=job.copied,
                         sequences_per_step=round(job.seqs / job.steps, 2) if job.steps else 0.0)
        return EngineResult(
            text=(choice.get("message") or {}).get("content") or "",
            finish_reason=choice.get("finish_reason"),
            usage=Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens")),
            request_id=str(out.get("id") or f"llamacpp-{uuid.uuid4().hex}"),
            latency_s=latency,
            engine=facts,
        )

    def close(self) -> None:
        """The runtime stays cached for the next trial; ``llama_cpp_engine.unload_all`` frees it."""
