"""Token accounting for engine results: ``complete_usage`` fills the gaps an engine leaves in ``Usage``.

Why: the counting itself (the order of preference, the GGUF tokenizer, the chars/4 fallback) lives in
``config.token_count`` so the trial manifest can use it without importing workers; only the
``Usage`` (an engine result type) is added here.
"""

from __future__ import annotations

from collections.abc import Callable

from config.token_count import Counter, Messages, count_prompt, text_estimate
from workers.engines.base import Usage


def complete_usage(
    prompt_tokens: int | None,
    completion_tokens: int | None,
    messages: Messages,
    text: str,
    counter: Counter | None = None,
    text_counter: Callable[[str], int] | None = None,
) -> Usage:
    """A ``Usage`` with gaps filled by estimates (and ``estimated=True`` when any gap was filled)."""
    estimated = False
    if prompt_tokens is None:
        prompt_tokens = count_prompt(messages, counter)
        estimated = True
    if completion_tokens is None:
        completion_tokens = None
        if text_counter is not None:
            try:
                completion_tokens = int(text_counter(text))
            except Exception:  # noqa: BLE001
                completion_tokens = None
        if completion_tokens is None:
            completion_tokens = text_estimate(text)
        estimated = True
    return Usage(int(prompt_tokens), int(completion_tokens), estimated=estimated)
