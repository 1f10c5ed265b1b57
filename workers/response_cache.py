"""The opt-in response cache (config ``cache: true``): a repeated deterministic request is answered from
``queue/response_cache.sqlite3`` instead of the engine.

Why a cache at all: re-running an experiment after a report or scoring change, or a sweep that repeats
the control prompt, would otherwise spend minutes to hours of GPU time on answers already known.
Why so strict a key: a reused answer must be the one the engine would give now. The key is the sha256
of everything that decides the answer: the engine, the model's identity (the GGUF file's sha256 for
llama_cpp, Ollama's model digest; never just a name), the engine settings that change the output
(context size, GPU layers, KV cache type, llama-cpp-python's version...), the full messages and every
sampling parameter including the seed. Only deterministic requests are looked up or stored:
temperature 0, or a fixed seed on an engine that honours it (SEEDED_ENGINES). Engines without a
reliable model identity (``openai_compat``: the server names its model but offers no digest of the
weights; ``dry_run``: nothing to save) are never cached, and the worker says so once.

A hit is recorded through the normal record path with the stored answer: same text, finish reason,
usage and request_id as the engine's original answer; ``latency_s`` is the lookup's own time; the
engine facts get ``cache_hit: true`` and ``cached_latency_s`` (docs/contract.md). The cache is an
optimisation: a damaged or locked cache file is logged once and the run goes on without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from config.engines import ENGINES, EngineError
from config.schema import EvalConfig
from producer.host.console import UserError
from producer.ledger.response_cache import (
    cache_connect,
    get_response,
    known_file_hash,
    note_hit,
    put_response,
    remember_file_hash,
)
from producer.runs.trials import aa_pairs
from workers.engines.base import EngineResult, GenerationParams, Usage
from workers.engines.registry import cache_identity_hook

log = logging.getLogger("workers")

KEY_VERSION = 1  # bump when the key's recipe changes: old entries then simply miss
# a fixed per-request seed makes temperature > 0 repeatable: each engine's ``honours_seed`` fact
SEEDED_ENGINES = frozenset(name for name, spec in ENGINES.items() if spec.honours_seed)
HASH_CHUNK = 8 * 1024 * 1024
LOUD_HASH_BYTES = 1 << 30

_lock = threading.Lock()
_caches: dict[tuple, ResponseCache | None] = {}
_said: set[str] = set()


_off: list[str] = []  # set (one reason) once the cache failed in this process: no more waiting on it


def _give_up(exc: BaseException) -> None:
    """The cache failed (locked past its short busy wait, damaged, read-only): this process runs without
    it from now on, and says so once."""
    with _lock:
        if not _off:
            _off.append(" ".join(str(exc).split()))
    _say_once(f"response cache unavailable, running without it: {exc}")


def _say_once(what: str, level: int = logging.WARNING) -> None:
    with _lock:
        if what in _said:
            return
        _said.add(what)
    log.log(level, "%s", what)


def deterministic(engine: str, params: GenerationParams) -> bool:
    """Whether the engine gives this request the same answer every time (the only ones cached)."""
    return params.temperature == 0 or (params.seed is not None and engine in SEEDED_ENGINES)


def file_sha256(path: Path) -> str:
    """The sha256 of a model file, memoised in the cache by (path, size, mtime): once per file version."""
    st = path.stat()
    conn = cache_connect()
    known = known_file_hash(conn, str(path), st.st_size, st.st_mtime_ns)
    if known:
        return known
    # a multi-GB file takes a while: say so where the run shows it (warnings), a small one quietly
    level = logging.WARNING if st.st_size >= LOUD_HASH_BYTES else logging.INFO
    log.log(level, "response cache: hashing %s (%.1f GB), once per model file", path.name, st.st_size / 1e9)
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(HASH_CHUNK):
            h.update(block)
    digest = h.hexdigest()
    remember_file_hash(conn, str(path), st.st_size, st.st_mtime_ns, digest)
    return digest


@dataclass(frozen=True)
class ResponseCache:
    """The cache for one engine and model: its identity and the engine settings that change answers."""

    engine: str
    model: str  # as the config names it (shown by ``cache stats``)
    model_id: str  # what the weights are: "sha256:<GGUF hash>" or Ollama's digest
    settings: dict[str, Any] = field(default_factory=dict)

    def key(self, messages: list[dict[str, str]], params: GenerationParams) -> str:
        recipe = {"v": KEY_VERSION, "engine": self.engine, "model_id": self.model_id, "settings": self.settings,
                  "messages": messages, "params": asdict(params)}
        text = json.dumps(recipe, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def lookup(self, messages: list[dict[str, str]], params: GenerationParams) -> EngineResult | None:
        """The stored answer as a result of this request (``cache_hit`` in its engine facts), or None."""
        if not deterministic(self.engine, params) or _off:
            return None
        start = time.perf_counter()
        key = self.key(messages, params)
        try:
            conn = cache_connect()
            raw = get_response(conn, key)
            if raw is None:
                return None
            note_hit(conn, key)
        except (sqlite3.Error, UserError) as exc:
            _give_up(exc)
            return None
        data = json.loads(raw)
        facts = dict(data.get("engine") or {})
        facts.update(cache_hit=True, cached_latency_s=data.get("latency_s"))
        return EngineResult(text=data["text"], finish_reason=data.get("finish_reason"),
                            usage=Usage(**data.get("usage") or {}), request_id=data.get("request_id") or "",
                            latency_s=time.perf_counter() - start, engine=facts)

    def remember(self, messages: list[dict[str, str]], params: GenerationParams, result: EngineResult) -> None:
        """Store a successful engine answer of a deterministic request (never a cached one again)."""
        if not deterministic(self.engine, params) or result.engine.get("cache_hit") or _off:
            return
        payload = {"text": result.text, "finish_reason": result.finish_reason, "usage": asdict(result.usage),
                   "request_id": result.request_id, "latency_s": result.latency_s, "engine": result.engine}
        try:
            put_response(cache_connect(), self.key(messages, params), self.engine, self.model, self.model_id,
                         json.dumps(payload, ensure_ascii=False, default=str))
        except (sqlite3.Error, UserError) as exc:
            _give_up(exc)


def regenerated(cfg: EvalConfig, trial: str, condition: str) -> bool:
    """An A/A arm (config ``aa``: the control asked again, under the "treatment" label of its A/A trial)
    must be generated anew: a cached answer would be the first arm's, and the noise floor would read 0."""
    return bool(cfg.aa) and condition == "treatment" and trial in aa_pairs(cfg)


def cache_for(cfg: EvalConfig, engine: str, model: str) -> ResponseCache | None:
    """The response cache for this run's engine and model, or None (``cache: false``, an engine without a
    reliable model identity, or an identity that cannot be read now). Memoised per process on success."""
    if not cfg.cache:
        return None
    identify = cache_identity_hook(engine)
    if identify is None:
        spec = ENGINES.get(engine)
        why = (spec.uncached_reason if spec else None) or "it has no known model identity"
        _say_once(f"cache: true has no effect on engine {engine}: {why}")
        return None
    memo = (engine, model, cfg.n_ctx, cfg.n_gpu_layers, cfg.kv_cache_type, getattr(cfg, "n_parallel", 1),
            cfg.local_endpoint)
    with _lock:
        if memo in _caches:
            return _caches[memo]
    try:
        identity = identify(cfg, model)
        cache = None if identity is None else ResponseCache(engine, model, *identity)
    except (EngineError, UserError, sqlite3.Error, OSError, ValueError) as exc:
        # no model file, engine not answering, damaged cache file: the engine path reports what it must
        _say_once(f"response cache not used for {engine} {model}: {' '.join(str(exc).split())}")
        return None
    if cache is None:
        _say_once(f"response cache not used for {engine} {model}: the server does not list the model's digest")
        return None
    with _lock:
        _caches[memo] = cache
    return cache
