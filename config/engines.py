"""Local engines by name: the one list that the config schema, the engine registry, ``plan`` and
``doctor`` read.

Why here and not in ``workers/``: the schema (bottom layer) must know the valid names, and the
workers' registry must know where each class lives; a table of plain strings serves both without
the config importing any engine code. ``workers.engines.registry`` imports the class lazily.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineSpec:
    target: str  # "module:Class", imported only when the engine is created
    http: bool  # talks to a server at ``local_endpoint`` (which holds the model)


# Order is the order error messages list the names in.
ENGINES: dict[str, EngineSpec] = {
    "llama_cpp": EngineSpec("workers.engines.llama_cpp_engine:LlamaCppEngine", http=False),
    "ollama": EngineSpec("workers.engines.ollama:OllamaEngine", http=True),
    "openai_compat": EngineSpec("workers.engines.openai_compat:OpenAICompatEngine", http=True),
    "dry_run": EngineSpec("workers.engines.dry_run:DryRunEngine", http=False),
}
ENGINE_NAMES = tuple(ENGINES)
HTTP_ENGINES = tuple(name for name, spec in ENGINES.items() if spec.http)


class EngineError(Exception):
    """Base class; the message must be one line, safe to show (no secrets).

    Why here: ``config.llama_cpp_import`` (below workers, used by the trial manifest's token counts)
    raises ``PermanentEngineError``; ``workers.engines.base`` re-exports these classes."""


class TransientEngineError(EngineError):
    """Retry with backoff (connection refused/reset, timeout, HTTP 408/429/5xx)."""


class PermanentEngineError(EngineError):
    """Do not retry (HTTP 4xx other than 408/429, model missing, prompt too long)."""
