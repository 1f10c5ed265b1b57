"""Engines by name. The names, their facts and where each class lives are in ``config/engines.py``;
imports are lazy so that a missing optional package (llama-cpp-python) only matters to the engine
that needs it.

Why the hooks here: preflight, the doctor report and the response cache ask the engine (its class,
or the ``hooks`` object its registry row names) instead of branching on its name, so a new engine is
one module plus one row in ``config/engines.py``. A hook an engine does not have means "nothing to
check / no identity / no section".
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from config.checks import Check, EngineFacts
from config.engines import ENGINES
from config.schema import EvalConfig
from workers.engines.base import Engine

Preflight = Callable[[EvalConfig, str], tuple[list[Check], EngineFacts]]
CacheIdentity = Callable[[EvalConfig, str], tuple[str, dict[str, Any]] | None]


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def engine_class(name: str):
    return _load(ENGINES[name].target)


def engine_hooks(name: str) -> Any:
    """The object holding the engine's hooks: its registry row's ``hooks``, else its class."""
    spec = ENGINES[name]
    return _load(spec.hooks or spec.target)


def preflight_hook(name: str) -> Preflight | None:
    """The engine's preflight probe ``(cfg, model) -> (checks, facts)``, or None (nothing to check)."""
    return getattr(engine_hooks(name), "preflight", None)


def cache_identity_hook(name: str) -> CacheIdentity | None:
    """The engine's model identity for the response cache ``(cfg, model) -> (model id, settings) | None``,
    or None when the engine has none (or its registry row says why it is not cached)."""
    spec = ENGINES.get(name)
    if spec is None or spec.uncached_reason:
        return None
    return getattr(engine_hooks(name), "cache_identity", None)


def doctor_sections(cfg: EvalConfig, redact: Callable[[str | None], str | None]) -> dict[str, dict[str, Any]]:
    """Each engine's own object in the doctor report, keyed by the engine's name."""
    out: dict[str, dict[str, Any]] = {}
    for name in ENGINES:
        section = getattr(engine_hooks(name), "doctor_section", None)
        if section is not None:
            out[name] = section(cfg, redact)
    return out


def create_engine(cfg: EvalConfig, model: str | None = None, name: str | None = None) -> Engine:
    """Build the configured engine for ``model`` (a trial's model; defaults to the config's).
    Each engine class takes ``(cfg, model)``. llama_cpp with ``n_parallel`` > 1 is the batched engine."""
    name = name or cfg.local_engine
    if name == "llama_cpp" and cfg.n_parallel > 1:
        from workers.engines.llama_cpp_batched import BatchedLlamaCppEngine  # lazy: only when configured

        return BatchedLlamaCppEngine(cfg, model or cfg.model_name())
    return engine_class(name)(cfg, model or cfg.model_name())
