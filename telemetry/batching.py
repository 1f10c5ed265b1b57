"""Batching advice for the in-process llama.cpp engine (``n_parallel``): does the run fit, which P to use.

Why: with P sequences in one llama.cpp context the n_ctx cells are shared (unified KV cache): the
shared prefix (the system prompt, decoded once and shared with every sequence) is held once, and each
of the P sequences adds its own suffix (the user message) and up to max_new_tokens of answer. Where
the control block ends and the treatment block begins, both system prompts can be cached at once, so
the prefix counted is the sum of the two (conservative: a warning too early costs a config edit, a
context that runs out mid-run costs the run). A run
whose longest request fits n_ctx alone can still run out of cells at P = 4, so ``plan`` and
``doctor`` check shared prefix + P x (longest suffix + max_new_tokens) <= n_ctx before the run.

Which P: batching pays on decode (P sequences per step cost little more than one, on a GPU) and
loses where a request is mostly fresh prompt to read (prefill already uses every core; batching only
adds bookkeeping). With this machine's step costs measured (``plan --measure``, telemetry.step_costs)
``recommend_from_costs`` predicts each P's speed for the run's token shape and picks the best; without
them ``recommend_parallel`` is the fixed rule from the measured table in docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from config.contract import CONDITIONS
from config.engines import in_process
from config.schema import EvalConfig
from config.token_count import count_prompt
from producer.inputs.messages import load_prompt_texts, render_messages, render_user_message
from producer.runs.trials import expand_trials
from telemetry.step_costs import StepCosts, read_costs

Counter = Callable[[list[dict[str, str]]], int]

# The rule (docs/performance.md, "Batched decode"): fresh prompt tokens per new token at or below
# BATCH_RATIO_MAX -> batch with RECOMMENDED_P sequences; above it prefill dominates -> sequential (P = 1).
BATCH_RATIO_MAX = 2.5
RECOMMENDED_P = 4
# With measured step costs (docs/performance.md, "Batched decode"): a long run keeps FILL of the P slots
# decoding (7.5 of 8 on 96 requests: the first step and the last answers' drain run fewer); batching is
# recommended only when it is predicted MIN_GAIN x faster (the prediction's own error is ~10%); and a run
# whose max_new_tokens is larger is assumed to get answers of ANSWER_TOKENS (the bundled closed-book
# answers: 11-13 tokens with max_new_tokens 32 or 64), since plan cannot know the lengths before the run.
FILL = 0.9
MIN_GAIN = 1.1
ANSWER_TOKENS = 12
NEAR_BEST = 0.97  # the smallest P within 3% of the best prediction: less memory for the same speed


@dataclass(frozen=True)
class Workload:
    """The facts about a run's requests that decide the context need and the best P."""

    requests: int
    prefix_tokens: int  # control + treatment system prompts (both cached where the two blocks meet)
    longest_tail: int  # max over requests of suffix tokens (user message) + max_new_tokens
    fresh_tokens: float  # mean prompt tokens per request not shared with the request before it
    new_tokens: float  # mean max_new_tokens per request
    where: str  # the request with the longest tail

    @property
    def ratio(self) -> float:
        """Fresh prompt tokens per new token: high = prefill-heavy, low = decode-heavy."""
        return self.fresh_tokens / max(self.new_tokens, 1.0)

    def context_need(self, n_parallel: int) -> int:
        """Cells the run needs with P sequences: the shared prefix once + P x (suffix + max_new_tokens)."""
        return self.prefix_tokens + max(1, n_parallel) * self.longest_tail

    def max_parallel(self, n_ctx: int) -> int:
        """The largest P whose worst case fits ``n_ctx`` (0 when not even one request fits)."""
        return max(0, (n_ctx - self.prefix_tokens) // max(self.longest_tail, 1))


def recommend_parallel(fresh_tokens: float, new_tokens: float) -> int:
    """The P to use on the in-process llama.cpp engine for a workload: RECOMMENDED_P when requests are
    mostly decode (fresh prompt tokens per max_new_tokens <= BATCH_RATIO_MAX), else 1 (sequential),
    because batching loses on prefill-heavy work (fresh paragraphs, few new tokens)."""
    if new_tokens <= 0:
        return 1
    return RECOMMENDED_P if fresh_tokens / new_tokens <= BATCH_RATIO_MAX else 1


def predicted_ratio(costs: StepCosts, p: int, fresh_tokens: float, completion_tokens: float) -> float:
    """Requests/s at P over the sequential engine's, from the step costs: both prefill the fresh tokens
    at the same cost per token; the sequential engine decodes one token per step of 1, the batched one
    P x FILL tokens per step of P."""
    steps = costs.decode_step_ms
    prefill = fresh_tokens * costs.prefill_ms_per_token
    return (prefill + completion_tokens * steps[1]) / (prefill + completion_tokens * steps[p] / (p * FILL))


def recommend_from_costs(costs: StepCosts, fresh_tokens: float, new_tokens: float,
                         max_p: int) -> tuple[int, float]:
    """(P, its predicted ratio): the measured P (at most ``max_p``, what n_ctx holds) with the best
    prediction, the smallest one within NEAR_BEST of it; (1, 1.0) when none is MIN_GAIN x faster."""
    completion = min(new_tokens, ANSWER_TOKENS)
    ratios = {p: predicted_ratio(costs, p, fresh_tokens, completion)
              for p in costs.decode_step_ms if 1 < p <= max_p}
    if not ratios or max(ratios.values()) < MIN_GAIN:
        return 1, 1.0
    best = max(ratios.values())
    p = min(q for q, r in ratios.items() if r >= NEAR_BEST * best)
    return p, ratios[p]


def _order_key(cfg: EvalConfig, item: dict[str, Any]) -> tuple[str, str, str]:
    """The run's order within a condition block: by type (instruction), paragraph, item."""
    return (cfg.dataset_type(item["dataset"]), str(item.get("context") or ""), str(item.get("id", "")))


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def measure_workload(cfg: EvalConfig, items: Iterable[dict[str, Any]], counter: Counter | None = None) -> Workload | None:
    """The workload of every trial and condition over ``items`` (None when there are none). Token
    counts use ``counter`` (the GGUF's tokenizer and template) when given, else ~4 characters per token;
    only the system prompts and the longest user message of each type are counted with it (a run of
    10,000 items stays quick). The fresh part of a prompt is counted in characters / 4 against the
    request before it."""
    ordered = sorted(items, key=lambda item: _order_key(cfg, item))
    if not ordered:
        return None
    prefix, tail, where = 0, 0, ""
    fresh_sum = new_sum = 0.0
    n = 0
    for trial in expand_trials(cfg):
        texts = load_prompt_texts(cfg, trial.prompt_set)
        longest: dict[str, dict[str, Any]] = {}  # type -> the item with the longest user message
        previous = ""
        for item in ordered:  # the user message is the same in both conditions: one pass per trial
            type_ = cfg.dataset_type(item["dataset"])
            user = render_user_message(texts.instruction(type_), item, type_)
            if type_ not in longest or len(user) > longest[type_]["chars"]:
                longest[type_] = {"chars": len(user), "item": item}
            fresh_sum += (len(user) - _common_prefix_len(user, previous)) / 4 * len(CONDITIONS)
            new_sum += trial.max_tokens_for(type_) * len(CONDITIONS)
            previous = user
            n += len(CONDITIONS)
        trial_prefix = 0
        for condition in CONDITIONS:
            sys_tokens = count_prompt([{"role": "system", "content": texts.system(condition)}], counter)
            trial_prefix += sys_tokens
            for type_, best in longest.items():
                msgs = render_messages(texts, best["item"], condition, type_)
                need = max(count_prompt(msgs, counter) - sys_tokens, 1) + trial.max_tokens_for(type_)
                if need > tail:
                    tail, where = need, f"trial {trial.slug}, {condition}, {type_}-book item {best['item'].get('id')}"
        prefix = max(prefix, trial_prefix)
    return Workload(n, prefix, tail, fresh_sum / n, new_sum / n, where)


def recommendation_lines(cfg: EvalConfig, work: Workload, costs: StepCosts | None) -> list[str]:
    """The recommended P and what it rests on: this machine's measured step costs, or the fixed rule."""
    p, fit = cfg.n_parallel, max(1, work.max_parallel(cfg.n_ctx))
    shape = f"~{work.fresh_tokens:.0f} fresh prompt tokens and up to {work.new_tokens:.0f} new tokens per request"
    if costs is None:
        rec = min(recommend_parallel(work.fresh_tokens, work.new_tokens), fit)
        why = "mostly decode: batching helps" if rec > 1 else "mostly fresh prompt: batching loses, sequential is faster"
        return [f"batching: n_parallel {p}; recommended {rec} for this workload ({shape}, {why}; the fixed rule of "
                "docs/performance.md: run `python -m producer plan --measure` to measure this machine's step costs)"]
    rec, ratio = recommend_from_costs(costs, work.fresh_tokens, work.new_tokens, fit)
    completion = min(work.new_tokens, ANSWER_TOKENS)
    said = (f"predicted {ratio:.2f}x the sequential engine" if rec > 1 else
            f"no P predicted {MIN_GAIN:.1f}x faster than sequential")
    return [f"batching: n_parallel {p}; recommended {rec} for this workload ({shape}, answers of ~{completion:.0f} "
            f"assumed: {said})",
            f"  from {costs.describe()} (decode step of 1 sequence {costs.decode_step_ms[1]:.3g} ms, of "
            + ", ".join(f"{q} {ms:.3g} ms" for q, ms in sorted(costs.decode_step_ms.items()) if q > 1)
            + f"; prefill {costs.prefill_ms_per_token:.3g} ms per token)"]


def batching_lines(cfg: EvalConfig, items: Iterable[dict[str, Any]], counter: Counter | None = None,
                   costs: StepCosts | None = None) -> list[str]:
    """``plan``'s lines on batching: the recommended P for this workload (from ``costs``, else this
    machine's stored measurement, else the fixed rule) and whether n_ctx holds the shared prefix + P x
    (longest suffix + max_new_tokens). In-process llama.cpp only."""
    if not in_process(cfg):
        return []
    work = measure_workload(cfg, items, counter)
    p = cfg.n_parallel
    if work is None:
        return [f"batching: n_parallel {p}; no items known yet, context need and recommendation not computed"]
    lines = recommendation_lines(cfg, work, costs if costs is not None else read_costs(cfg))
    need = work.context_need(p)
    detail = (f"shared prefix ~{work.prefix_tokens} + {p} x (longest suffix + max_new_tokens ~{work.longest_tail})"
              f" = ~{need} tokens of n_ctx {cfg.n_ctx}")
    lines.append(f"  context: {detail}")
    if need > cfg.n_ctx:
        fit = work.max_parallel(cfg.n_ctx)
        fix = f"n_parallel {fit}" if fit >= 1 else "shorter prompts or lower max_new_tokens"
        lines.append(f"  WARNING: n_ctx {cfg.n_ctx} is too small for {p} sequences ({work.where}): "
                     f"raise n_ctx to {need} or use {fix}")
    return lines
