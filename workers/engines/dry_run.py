"""Deterministic fake answers with no model: orchestration smoke tests and plans, offline in seconds.

The answer is derived from a hash of the messages, so the same request always gets the same answer
(resume tests can compare runs); about one in five answers is the instructed "I don't know.".
"""

from __future__ import annotations

import hashlib
import json
import time

from config.schema import EvalConfig
from workers.engines.base import EngineResult, GenerationParams, Usage

WORDS = ("Paris", "1912", "the Nile", "Albert Einstein", "blue", "42", "Mount Everest", "oxygen")


class DryRunEngine:
    name = "dry_run"
    thread_safe = True

    def __init__(self, cfg: EvalConfig | None = None, model: str | None = None) -> None:
        self.model = model or "dry-run"

    def generate(self, messages: list[dict[str, str]], params: GenerationParams) -> EngineResult:
        start = time.perf_counter()
        payload = json.dumps([messages, params.temperature, params.seed], sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
        n = int(digest[:8], 16)
        text = "I don't know." if n % 5 == 0 else WORDS[n % len(WORDS)]
        words = text.split()
        finish = "length" if len(words) > params.max_tokens else "stop"
        text = " ".join(words[: params.max_tokens])
        prompt_tokens = sum(len((m.get("content") or "").split()) for m in messages)
        return EngineResult(
            text=text,
            finish_reason=finish,
            usage=Usage(prompt_tokens, len(text.split())),
            request_id=f"dry-{digest[:16]}",
            latency_s=time.perf_counter() - start,
            engine={"name": self.name, "model": self.model},
        )

    def close(self) -> None:
        pass
