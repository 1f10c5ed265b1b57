"""In-process llama.cpp (llama-cpp-python): the GPU worker's engine.

Why a module-level cache: loading weights takes seconds to minutes and VRAM is scarce, so a process
loads a model once and reuses it across chunks and trials; asking for another model (or other
settings) frees the previous one first (one GPU, one model: docs/architecture.md fact 4). The model
keeps the KV cache of the previous prompt, so requests sharing a system prompt reuse it
(docs/architecture.md fact 5).
Not thread-safe: one request at a time.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config.llama_cpp_import import import_llama_cpp
from config.model_files import ModelFileError, resolve_model_path
from config.schema import EvalConfig
from workers.engines.base import EngineResult, GenerationParams, PermanentEngineError, Usage

PROMPT_READING = "last-token-alone/1"  # in the response cache key: answers read the older way miss
PROMPT_BLOCK = 64  # prefix batches cut at multiples of this on a GPU or with flash attention (prompt_batches)

_cache_lock = threading.Lock()
_cache: dict[tuple, Any] = {}  # (path, settings...) -> llama_cpp.Llama; at most one entry


def model_settings(cfg: EvalConfig) -> dict[str, Any]:
    return {
        "n_ctx": cfg.n_ctx,
        "n_gpu_layers": cfg.n_gpu_layers,
        "n_threads": cfg.n_threads,
        "kv_cache_type": cfg.kv_cache_type,
        "seed": cfg.seed,
    }


def gpu_offload_supported(llama_cpp: Any) -> bool:
    """Whether this llama-cpp-python build can offload layers to a GPU (CUDA, Vulkan, Metal...)."""
    try:
        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:  # noqa: BLE001 - very old builds lack the call
        return False


def cached(key: tuple, build: Callable[[], Any]) -> tuple[Any, bool]:
    """(the one cached model object for ``key``, whether it was built now): builds it, freeing any other
    first (one GPU, one model). The batched engine (``llama_cpp_batched``) keeps its runtime here too."""
    with _cache_lock:
        if key in _cache:
            return _cache[key], False
        for old in list(_cache.values()):
            old.close()
        _cache.clear()
        obj = build()
        _cache[key] = obj
        return obj, True


def llama_kwargs(llama_cpp: Any, path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The ``Llama(...)`` arguments for these settings."""
    kwargs: dict[str, Any] = {
        "model_path": str(path),
        "n_ctx": settings["n_ctx"],
        "n_gpu_layers": settings["n_gpu_layers"],
        "verbose": False,
    }
    if settings["n_threads"]:
        # both: llama-cpp-python's prompt (batch) threads default to every core, which oversubscribes
        # a busy machine and makes llama.cpp's spinning threads crawl
        kwargs["n_threads"] = kwargs["n_threads_batch"] = settings["n_threads"]
    if settings["seed"] is not None:
        kwargs["seed"] = settings["seed"]
    if settings["kv_cache_type"] != "f16":
        ggml = {"q8_0": llama_cpp.GGML_TYPE_Q8_0, "q4_0": llama_cpp.GGML_TYPE_Q4_0}[settings["kv_cache_type"]]
        kwargs.update(type_k=ggml, type_v=ggml, flash_attn=True)
    return kwargs


def prompt_batches(start: int, end: int, block: int = 0) -> list[tuple[int, int]]:
    """The batches ``[a, b)`` that read prompt positions ``[start, end)``: the last position always on its
    own, the rest in one batch (``block`` 0) or cut at every multiple of ``block``.

    Why: the logits of the last prompt token (the ones the first answer token is sampled from) depend
    on the shape of the batch that computes them. llama-cpp-python reads a whole cold prompt in one
    batch but only the last token on a warm cache, and on a CPU the two differ by up to 1.4 in a logit,
    enough to change a seeded answer at T = 1 (docs/statistics.md, "What a seed fixes"). Read alone in
    every path, the token gets the same logits whatever the cache held. ``block`` extends the rule to
    the prefix for backends whose kernels change with the batch size (a GPU).
    """
    if end - start <= 1:
        return [(start, end)] if end > start else []
    cuts = [start]
    if block:
        cuts += range(start - start % block + block, end - 1, block)
    cuts += [end - 1, end]
    return list(itertools.pairwise(cuts))


def prompt_block(settings: dict[str, Any]) -> int:
    """``PROMPT_BLOCK`` where the prefix's batch shape was seen to change its values (flash attention on
    the CPU, measured) or is expected to (GPU kernels picked by batch size, not measured here); else 0:
    on the CPU without flash attention a prefix read in one batch or in several gives the same bits, and
    re-reading part of a cached block would cost prompt time for nothing."""
    flash = settings["kv_cache_type"] != "f16"  # llama_kwargs turns flash attention on for these
    gpu = settings["n_gpu_layers"] != 0 and gpu_offload_supported(import_llama_cpp())
    return PROMPT_BLOCK if flash or gpu else 0


@functools.cache
def _canonical_class(llama_cpp: Any) -> type:
    """``Llama`` whose prompt reading follows ``prompt_batches`` (one class per llama_cpp module)."""

    class CanonicalLlama(llama_cpp.Llama):
        """Reads every prompt in the same batches whatever its KV cache holds: a seeded answer is then
        the same on a cold cache (a resumed run), a warm one, and after any other prompt."""

        prompt_block = 0  # 0: only the last token alone; N: also cut the prefix at multiples of N

        def eval(self, tokens: Any) -> None:
            tokens = [int(t) for t in tokens]
            start = self.n_tokens
            if len(tokens) > 1 and self.prompt_block and start % self.prompt_block:
                # re-read the cached part of the current block, so that it is read as a cold cache would
                aligned = start - start % self.prompt_block
                tokens = [int(t) for t in self.input_ids[aligned:start]] + tokens
                self.n_tokens = start = aligned
            for a, b in prompt_batches(start, start + len(tokens), self.prompt_block):
                super().eval(tokens[a - start:b - start])

    return CanonicalLlama


def new_llama(path: Path, kwargs: dict[str, Any]) -> Any:
    """A loaded ``Llama`` that reads prompts in cache-independent batches (``prompt_batches``); a file
    llama.cpp cannot load is a one-line ``PermanentEngineError``."""
    llama_cpp = import_llama_cpp()
    try:
        return _canonical_class(llama_cpp)(**kwargs)
    except (ValueError, RuntimeError, OSError) as exc:
        raise PermanentEngineError(f"cannot load model {path.name}: {exc}") from None


def _load(path: Path, settings: dict[str, Any]) -> tuple[Any, bool]:
    """The cached model for (path, settings), loading it (and freeing any other) if needed."""
    key = (str(path), *sorted(settings.items()))
    return cached(key, lambda: new_llama(path, llama_kwargs(import_llama_cpp(), path, settings)))


def unload_all() -> None:
    with _cache_lock:
        for llm in _cache.values():
            llm.close()
        _cache.clear()


def engine_model(cfg: EvalConfig, model: str | None) -> tuple[str, Path]:
    """(model reference, GGUF path) of an in-process engine; a missing file is a PermanentEngineError
    (no file, no run: the worker stops the run with the reason)."""
    ref = model or cfg.local_model or ""
    try:
        return ref, resolve_model_path(ref)
    except ModelFileError as exc:
        raise PermanentEngineError(str(exc)) from None


class LlamaCppEngine:
    name = "llama_cpp"
    thread_safe = False

    def __init__(self, cfg: EvalConfig, model: str | None = None) -> None:
        self.model_ref, self.model_path = engine_model(cfg, model)
        self.settings = model_settings(cfg)
        self.llm, loaded = _load(self.model_path, self.settings)
        self.llm.prompt_block = prompt_block(self.settings)
        # load_facts is set only when this call loaded weights: the worker counts model loads with it
        self.load_facts = {"model_path": str(self.model_path), **self.settings} if loaded else None
        self._lock = threading.Lock()

    def facts(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model_ref, "model_path": str(self.model_path),
                "min_p": 0.0, **self.settings}

    def generate(self, messages: list[dict[str, str]], params: GenerationParams) -> EngineResult:
        kwargs: dict[str, Any] = {"messages": messages, **params.sampling()}
        start = time.perf_counter()
        with self._lock:
            try:
                out = self.llm.create_chat_completion(**kwargs)
            except ValueError as exc:  # e.g. prompt longer than n_ctx: retrying cannot help
                raise PermanentEngineError(" ".join(str(exc).split())) from None
        latency = time.perf_counter() - start
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return EngineResult(
            text=(choice.get("message") or {}).get("content") or "",
            finish_reason=choice.get("finish_reason"),
            usage=Usage(usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens")),
            request_id=str(out.get("id") or f"llamacpp-{uuid.uuid4().hex}"),
            latency_s=latency,
            engine=self.facts(),
        )

    def close(self) -> None:
        """The model stays cached for the next trial; ``unload_all`` frees it."""
