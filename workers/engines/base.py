"""The one small interface every inference engine implements.

Why: switching engine must be a config change only. Engines turn ``messages`` + ``GenerationParams``
into an ``EngineResult``; they raise ``TransientEngineError`` for failures worth retrying (timeouts,
5xx, dropped connections) and ``PermanentEngineError`` for the rest (bad request, unknown model).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

# The error classes live below workers so the token counting in config can raise them; re-exported here.
from config.engines import EngineError, PermanentEngineError, TransientEngineError  # noqa: F401
from config.sampler import NEUTRAL_SAMPLER, TOP_K_UNSET, TOP_P_UNSET


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings for one request (from the request body of CONTRACT section 2)."""

    max_tokens: int
    temperature: float
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> GenerationParams:
        return cls(
            max_tokens=int(body["max_tokens"]),
            temperature=float(body["temperature"]),
            top_p=body.get("top_p"),
            top_k=body.get("top_k"),
            stop=tuple(body.get("stop") or ()),
            seed=body.get("seed"),
        )

    def sampling(self) -> dict[str, Any]:
        """OpenAI-style sampling arguments, the same for every engine that takes them (llama-cpp-python
        and OpenAI-compatible servers): unset top_p/top_k mean "no filter" (not llama-cpp-python's
        0.95/40/0.05 defaults), the neutral sampler of config/sampler.py; ``stop`` and ``seed`` only when set."""
        out: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p if self.top_p is not None else TOP_P_UNSET,
            "top_k": self.top_k if self.top_k is not None else TOP_K_UNSET,
            **NEUTRAL_SAMPLER,
        }
        if self.stop:
            out["stop"] = list(self.stop)
        if self.seed is not None:
            out["seed"] = self.seed
        return out


@dataclass
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    estimated: bool = False

    def __post_init__(self) -> None:
        if self.total_tokens is None and self.prompt_tokens is not None and self.completion_tokens is not None:
            self.total_tokens = self.prompt_tokens + self.completion_tokens


@dataclass
class EngineResult:
    text: str
    finish_reason: str | None
    usage: Usage
    request_id: str
    latency_s: float
    engine: dict[str, Any] = field(default_factory=dict)  # engine facts: name, model, timings, cache...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Engine(Protocol):
    """An inference engine. One instance per worker process; not shared across threads unless
    ``thread_safe`` is True (HTTP engines), in which case up to ``concurrency`` calls overlap
    (max_concurrent_requests, or what auto resolved it to)."""

    name: str
    thread_safe: bool

    def generate(self, messages: list[dict[str, str]], params: GenerationParams) -> EngineResult: ...

    def close(self) -> None: ...
