"""The sampler every local engine gets, sent explicitly (docs/engines.md, "One sampler on every engine").

Why: engines differ in their defaults (Ollama: top_p 0.9, top_k 40, repeat_penalty 1.1 over the last 64
tokens; llama-cpp-python: top_p 0.95, top_k 40, min_p 0.05, repeat_penalty 1.0), so a "greedy" answer
would depend on the engine. Every setting that changes the distribution is sent, with one neutral value:
no min_p cut, no penalties; an unset top_p or top_k means no filter (1.0 / 0). ``stop`` is sent only when
the config sets it (an empty list would replace an Ollama Modelfile's own stop words). The names are
the same in llama-cpp-python, llama-server's OpenAI-compatible API and Ollama's ``options``.
"""

from __future__ import annotations

from typing import Any

from config.schema import EvalConfig

NEUTRAL_SAMPLER: dict[str, float] = {"min_p": 0.0, "repeat_penalty": 1.0, "presence_penalty": 0.0,
                                     "frequency_penalty": 0.0}
TOP_P_UNSET = 1.0  # an unset top_p: no nucleus filter
TOP_K_UNSET = 0  # an unset top_k: no top-k filter


def effective_sampler(cfg: EvalConfig) -> dict[str, Any]:
    """What a local engine is sent besides each trial's temperature, top_p, top_k and seed (those are in
    the manifest's ``trial``): the trial manifest records it under ``engine.sampler``."""
    return {**NEUTRAL_SAMPLER, "top_p_when_unset": TOP_P_UNSET, "top_k_when_unset": TOP_K_UNSET,
            "stop": list(cfg.stop) or None}
