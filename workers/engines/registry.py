"""Engines by name. Imports are lazy so that a missing optional package (llama-cpp-python) only
matters to the engine that needs it."""

from __future__ import annotations

from importlib import import_module

from config.schema import EvalConfig
from workers.engines.base import Engine

ENGINES = {
    "llama_cpp": "workers.engines.llama_cpp_engine:LlamaCppEngine",
    "dry_run": "workers.engines.dry_run:DryRunEngine",
    "ollama": "workers.engines.ollama:OllamaEngine",
    "openai_compat": "workers.engines.openai_compat:OpenAICompatEngine",
}


def engine_class(name: str):
    module, _, attr = ENGINES[name].partition(":")
    return getattr(import_module(module), attr)


def create_engine(cfg: EvalConfig, model: str | None = None, name: str | None = None) -> Engine:
    """Build the configured engine for ``model`` (a trial's model; defaults to the config's).
    Each engine class takes ``(cfg, model)``."""
    return engine_class(name or cfg.local_engine)(cfg, model or cfg.model_name())
