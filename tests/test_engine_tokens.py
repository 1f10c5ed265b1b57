"""Token accounting: engine usage first, then the model's own tokenizer, then chars/4 (flagged)."""

from __future__ import annotations

import pytest

from config.model_files import resolve_model_path
from config.token_count import chars_estimate, count_prompt, gguf_counter, gguf_vocab, render_with_template
from telemetry.gguf import read_gguf_metadata
from workers.engines.tokens import complete_usage

MESSAGES = [{"role": "system", "content": "You answer in a few words."},
            {"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.unit
def test_chars_fallback_is_the_documented_rule():
    # ceil(26/4)=7 + 4 framing, ceil(30/4)=8 + 4 framing
    assert chars_estimate(MESSAGES) == 7 + 4 + 8 + 4
    assert chars_estimate([]) == 1


@pytest.mark.unit
def test_engine_usage_wins_and_is_exact():
    usage = complete_usage(31, 5, MESSAGES, "Paris")
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, usage.estimated) == (31, 5, 36, False)


@pytest.mark.unit
def test_gaps_are_filled_and_flagged():
    usage = complete_usage(None, 5, MESSAGES, "Paris", counter=lambda msgs: 29)
    assert (usage.prompt_tokens, usage.estimated) == (29, True)
    usage = complete_usage(12, None, MESSAGES, "Paris is nice")
    assert (usage.completion_tokens, usage.estimated) == (4, True)  # ceil(13/4)


@pytest.mark.unit
def test_broken_counter_falls_back():
    def broken(msgs):
        raise RuntimeError("server gone")

    assert count_prompt(MESSAGES, broken) == chars_estimate(MESSAGES)


def test_gguf_vocab_counts_with_the_chat_template():
    path = resolve_model_path("smollm2")
    meta = read_gguf_metadata(path)
    assert meta["general.architecture"] == "llama" and int(meta["llama.context_length"]) == 8192
    text = render_with_template(gguf_vocab(path), MESSAGES)
    assert text == ("<|im_start|>system\nYou answer in a few words.<|im_end|>\n"
                    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    n = gguf_counter(path)(MESSAGES)
    assert 20 <= n <= 40  # exact agreement with the server is tested in test_engine_openai_compat
