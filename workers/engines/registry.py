"""Engines by name. The names and where each class lives are in ``config/engines.py``; imports are
lazy so that a missing optional package (llama-cpp-python) only matters to the engine that needs it."""

from __future__ import annotations

from importlib import import_module

from config.engines import ENGINES
from config.schema import EvalConfig
from workers.engines.base import Engine


def engine_class(name: str):
    module, _, attr = ENGINES[name].target.partition(":")
    return getattr(import_module(module), attr)


def create_engine(cfg: EvalConfig, model: str | None = None, name: str | None = None) -> Engine:
    """Build the configured engine for ``model`` (a trial's model; defaults to the config's).
    Each engine class takes ``(cfg, model)``. llama_cpp with ``n_parallel`` > 1 is the batched engine."""
    name = name or cfg.local_engine
    if name == "llama_cpp" and cfg.n_parallel > 1:
        from workers.engines.llama_cpp_batched import BatchedLlamaCppEngine  # lazy: only when configured

        return BatchedLlamaCppEngine(cfg, model or cfg.model_name())
    return engine_class(name)(cfg, model or cfg.model_name())
