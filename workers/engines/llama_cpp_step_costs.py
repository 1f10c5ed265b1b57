"""Measure what a decode step of 1, 2, 4 ... P sequences and a prompt chunk cost on this machine, in a
context built like the batched engine's (unified KV cache, the prefix shared by ``llama_memory_seq_cp``).

Why here: it drives llama.cpp's low-level API, which only the engine room touches. ``plan --measure``
(through the registry hook ``LlamaCppHooks.measure_step_costs``) stores the result for ``plan`` and
``doctor`` (``telemetry.step_costs``); ``tools/bench_batched.py`` prints it beside every ratio. One
context holds every P, so the cached prefix is read once: seconds on a GPU, about ten on a 2-core CPU.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from config.llama_cpp_import import import_llama_cpp
from config.schema import EvalConfig
from telemetry import step_costs
from telemetry.step_costs import StepCosts, new_costs
from workers.engines.llama_cpp_batched import TOKENIZER_N_CTX, batched_context
from workers.engines.llama_cpp_engine import engine_model, llama_kwargs, model_settings, new_llama

ROUNDS = 10  # median of this many steps of each kind, after WARM untimed ones
WARM = 3
PREFILL_CHUNK = 16  # prompt tokens per timed prefill: a user message's fresh part
FILLER = ("Answer the question from the passage. If the passage does not say, answer that you do not know. "
          "Keep the answer short: a name, a number, a date or a short phrase. ")


def measure(cfg: EvalConfig, model: str | None = None, parallel: Sequence[int] | None = None,
            prefix: str | None = None, position: int | None = None,
            say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Step costs in ms: ``decode_step_ms`` {P: one step of P sequences}, ``prefill_ms_per_token``, and the
    ``position`` they were taken at (the tokens of ``prefix``, else ``position`` tokens of filler text;
    defaults: telemetry.step_costs.MEASURE_PARALLEL and MEASURE_POSITION)."""
    parallel = parallel or step_costs.MEASURE_PARALLEL
    position = position or step_costs.MEASURE_POSITION
    lc = import_llama_cpp()
    _, path = engine_model(cfg, model)
    p_max = max(parallel)
    say(f"loading {path.name}")
    llm = new_llama(path, {**llama_kwargs(lc, path, model_settings(cfg)), "n_ctx": TOKENIZER_N_CTX})
    try:
        if prefix is None:
            filler = llm.tokenize((FILLER * (position // 20 + 1)).encode("utf-8"), add_bos=True)
            tokens = filler[:position]
        else:
            tokens = llm.tokenize(prefix.encode("utf-8"), add_bos=True)
        per_seq = (WARM + ROUNDS) * len(parallel) + PREFILL_CHUNK * (ROUNDS + 1)
        ctx, n_batch = batched_context(llm, len(tokens) + p_max * per_seq + 64, p_max)
        batch = lc.llama_batch_init(max(n_batch, p_max), 0, 1)
        try:
            return _steps(lc, ctx, batch, n_batch, tokens, parallel, say)
        finally:
            lc.llama_batch_free(batch)
            ctx.close()
    finally:
        llm.close()


def _steps(lc: Any, ctx: Any, batch: Any, n_batch: int, prefix: list[int], parallel: Sequence[int],
           say: Callable[[str], None]) -> dict[str, Any]:
    pos = dict.fromkeys(range(max(parallel)), len(prefix))

    def decode(items: list[tuple[int, int, int]]) -> float:
        for i, (seq, at, token) in enumerate(items):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, at, 1, True
            batch.seq_id[i][0] = seq
        batch.n_tokens = len(items)
        t0 = time.perf_counter()
        if lc.llama_decode(ctx.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed while measuring step costs")
        return time.perf_counter() - t0

    def step(seqs: range, tokens: int = 1) -> float:
        items = []
        for seq in seqs:
            items += [(seq, pos[seq] + k, prefix[-1]) for k in range(tokens)]
            pos[seq] += tokens
        return decode(items)

    def ms(f: Callable[[], float]) -> float:
        return round(1000 * statistics.median(f() for _ in range(ROUNDS)), 2)

    say(f"reading a {len(prefix)}-token prefix")
    for i in range(0, len(prefix), n_batch):
        decode([(0, k, prefix[k]) for k in range(i, min(i + n_batch, len(prefix)))])
    for seq in range(1, max(parallel)):
        lc.llama_memory_seq_cp(lc.llama_get_memory(ctx.ctx), 0, seq, 0, len(prefix))
    costs: dict[int, float] = {}
    for p in sorted(parallel):
        say(f"decode steps of {p} sequence{'s' if p > 1 else ''}")
        for _ in range(WARM):  # untimed: a fresh context's first steps also allocate
            step(range(p))
        costs[p] = ms(lambda p=p: step(range(p)))
    step(range(1), PREFILL_CHUNK)  # untimed, as above
    prefill = ms(lambda: step(range(1), PREFILL_CHUNK)) / PREFILL_CHUNK
    return {"position": len(prefix), "decode_step_ms": costs, "prefill_ms_per_token": round(prefill, 3)}


def measure_step_costs(cfg: EvalConfig, model: str | None = None,
                       say: Callable[[str], None] = lambda _: None) -> StepCosts:
    """The record ``plan --measure`` stores: this config's model, machine and settings."""
    started = time.perf_counter()
    got = measure(cfg, model, say=say)
    return new_costs(cfg, model, got["position"], got["decode_step_ms"], got["prefill_ms_per_token"],
                     time.perf_counter() - started)
