"""Fault injection around a real engine, for the engine-fault tests and for drills.

Why not a mock: the wrapped engine is the real one (dry_run or llama_cpp); this only makes a share of
calls raise the errors a flaky server or a broken request would, so retries, failure records and
``status`` are tested end to end through real worker processes. Enabled only by the environment
variable ``EXCELLENCE_FAULTS`` (inherited by spawned workers), e.g.
``transient=0.3,permanent=0.1`` (shares of requests, chosen by a hash of the messages: the same
requests fail in every process). A transient fault fails the first ``transient_tries`` attempts
(default 1) of a request, then lets it through; a permanent fault fails every attempt.

For the crash drills: ``crash`` (a share of requests whose call ends the process at once, like a
segfault in the engine), ``delay_s`` (seconds added to every call: a slower model, so a kill lands
mid-chunk), ``load_delay_s`` (seconds added to the engine's start, after the weights loaded: a kill
lands while nothing is in flight yet) and ``load_abort`` (the process aborts as it starts loading the
model, as ggml does when the GPU code cannot run: doctor's probe and the pool's crash-loop breaker).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from typing import Any

from workers.engines.base import (
    Engine,
    EngineResult,
    GenerationParams,
    PermanentEngineError,
    TransientEngineError,
)

ENV_FAULTS = "EXCELLENCE_FAULTS"


def _parse(spec: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in spec.split(","):
        if "=" in part:
            key, _, value = part.partition("=")
            out[key.strip()] = float(value)
    return out


class FaultyEngine:
    def __init__(self, inner: Engine, spec: dict[str, float]) -> None:
        self.inner = inner
        self.transient = spec.get("transient", 0.0)
        self.permanent = spec.get("permanent", 0.0)
        self.transient_tries = int(spec.get("transient_tries", 1))
        self.crash = spec.get("crash", 0.0)
        self.delay_s = spec.get("delay_s", 0.0)
        self._tries: dict[str, int] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, messages: list[dict[str, str]], params: GenerationParams) -> EngineResult:
        key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode("utf-8")).hexdigest()
        share = int(key[:8], 16) / 0xFFFFFFFF
        if self.delay_s:
            time.sleep(self.delay_s)
        if 1.0 - share < self.crash:  # the top of the range, apart from the permanent/transient shares
            os._exit(70)
        if share < self.permanent:
            raise PermanentEngineError("injected permanent fault: request rejected")
        if share < self.permanent + self.transient:
            with self._lock:
                n = self._tries[key] = self._tries.get(key, 0) + 1
            if n <= self.transient_tries:
                raise TransientEngineError(f"injected transient fault (attempt {n})")
        return self.inner.generate(messages, params)

    def close(self) -> None:
        self.inner.close()


def maybe_abort_load() -> None:
    """``load_abort``: end the process with abort() (SIGABRT; exit 3 on Windows) before a model loads."""
    spec = os.environ.get(ENV_FAULTS, "").strip()
    if spec and _parse(spec).get("load_abort"):
        sys.stderr.write("ggml_cuda_init: failed to initialize CUDA: PTX JIT compilation failed"
                         " (fault injection: load_abort)\n")
        sys.stderr.flush()
        os.abort()


def maybe_wrap(engine: Engine) -> Engine:
    spec = os.environ.get(ENV_FAULTS, "").strip()
    if not spec:
        return engine
    parsed = _parse(spec)
    if parsed.get("load_delay_s"):
        time.sleep(parsed["load_delay_s"])
    return FaultyEngine(engine, parsed)
