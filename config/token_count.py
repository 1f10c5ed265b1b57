"""Token accounting when an engine does not say how many tokens a request used.

Why: cost and throughput figures need token counts, but Ollama omits ``prompt_eval_count`` when the
whole prompt came from its cache, and some servers send no ``usage`` at all. The order of preference:

1. the engine's own usage (exact; ``Usage.estimated`` stays False);
2. the model's own tokenizer where reachable: a GGUF's vocabulary loaded with
   ``llama_cpp.Llama(path, vocab_only=True)`` (no weights, milliseconds) and the GGUF's chat template
   applied; or an Ollama server counting for us (``POST /api/embed`` returns ``prompt_eval_count``);
3. the documented fallback: ``ceil(characters / 4)`` per message plus 4 tokens of chat framing each
   (the usual rule of thumb for English BPE vocabularies).

Anything from 2 or 3 is flagged ``estimated=True``; estimated counts are reported as such and never
feed significance tests.

Why here, below workers: the trial manifest counts prompt tokens too (``prompt_text_counter``); one
definition serves it, preflight and the engines (``workers.engines.tokens`` adds ``complete_usage``).
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from config.llama_cpp_import import import_llama_cpp
from config.model_files import resolve_model_path

CHARS_PER_TOKEN = 4
FRAMING_TOKENS_PER_MESSAGE = 4

Messages = Sequence[dict[str, str]]
Counter = Callable[[Messages], int]


def chars_estimate(messages: Messages) -> int:
    """The fallback: ceil(chars / 4) per message + 4 tokens of framing each (at least 1)."""
    total = 0
    for m in messages:
        total += math.ceil(len(m.get("content") or "") / CHARS_PER_TOKEN) + FRAMING_TOKENS_PER_MESSAGE
    return max(total, 1)


def text_estimate(text: str) -> int:
    return max(math.ceil(len(text) / CHARS_PER_TOKEN), 0)


def plain_transcript(messages: Messages) -> str:
    """Messages as one text (used where no chat template is known)."""
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content') or ''}" for m in messages)


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence native (C) writes to stderr for the duration (file descriptor 2, any OS)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_vocab_lock = threading.Lock()
_vocab_cache: dict[str, Any] = {}


def gguf_vocab(path: str | Path) -> Any:
    """A vocabulary-only ``llama_cpp.Llama`` for ``path`` (cached per process; no weights loaded)."""
    key = str(Path(path).resolve())
    with _vocab_lock:
        if key not in _vocab_cache:
            llama_cpp = import_llama_cpp()
            with quiet_stderr():  # llama.cpp prints a context warning even with verbose=False
                _vocab_cache[key] = llama_cpp.Llama(model_path=key, vocab_only=True, verbose=False)
        return _vocab_cache[key]


def render_with_template(llm: Any, messages: Messages) -> str:
    """The prompt text the model would see, through the GGUF's chat template (approximate: falls back
    to a plain transcript when the template cannot be rendered)."""
    meta = getattr(llm, "metadata", {}) or {}
    template = meta.get("tokenizer.chat_template")
    if template:
        try:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def token_text(key: str) -> str:
                tid = meta.get(key)
                if tid is None:
                    return ""
                try:
                    return llm.detokenize([int(tid)]).decode("utf-8", errors="ignore")
                except Exception:  # noqa: BLE001 - an odd vocabulary only costs precision
                    return ""

            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=token_text("tokenizer.ggml.eos_token_id"),
                bos_token=token_text("tokenizer.ggml.bos_token_id"),
            )
            return formatter(messages=list(messages)).prompt
        except Exception:  # noqa: BLE001 - template features we cannot render: approximate
            pass
    return plain_transcript(messages)


def gguf_counter(path: str | Path) -> Counter:
    """Count prompt tokens with the GGUF's own tokenizer and chat template."""

    def count(messages: Messages) -> int:
        llm = gguf_vocab(path)
        text = render_with_template(llm, messages)
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    return count


def gguf_text_counter(path: str | Path) -> Callable[[str], int]:
    """Count tokens of a plain text (completions) with the GGUF's tokenizer."""

    def count(text: str) -> int:
        return len(gguf_vocab(path).tokenize(text.encode("utf-8"), add_bos=False, special=False))

    return count


def prompt_text_counter(tokenizer: str | None, model: str | None) -> tuple[Callable[[str], int] | None, str]:
    """(counter, its name) for exact token counts of prompt texts, or (None, why not).

    ``tokenizer`` (config field) is a GGUF file or the name of a bundled model (only its vocabulary is
    read, no weights); without it, the trial's own GGUF when it runs on llama.cpp (``model``). Hugging
    Face tokenizers are not supported: counts then stay estimates (~4 characters per token)."""
    for ref in [r for r in (tokenizer, model) if r]:
        try:
            path = resolve_model_path(ref)
            counter = gguf_text_counter(path)
            counter("probe")  # loads the vocabulary now: a broken file falls back here, not later
        except Exception as exc:  # noqa: BLE001 - a tokenizer only adds precision
            if ref == tokenizer:
                return None, f"estimated (tokenizer {ref} unusable: {' '.join(str(exc).split())})"
            continue
        return counter, f"tokenizer {path.name}"
    return None, "estimated"


def count_prompt(messages: Messages, counter: Counter | None = None) -> int:
    """Prompt tokens by ``counter`` when it works, else the chars/4 fallback."""
    if counter is not None:
        try:
            n = int(counter(messages))
            if n > 0:
                return n
        except Exception:  # noqa: BLE001 - estimation must never fail a request
            pass
    return chars_estimate(messages)
