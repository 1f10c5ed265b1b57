"""Benchmark: the paragraph-grouped request order vs today's (prepared) order, sequential llama.cpp.

Target (issue 17): the grouped order >= 1.3 x today's requests/s on the bundled SQuAD sample.

    python tools/bench_order.py [--rounds 2] [--max-tokens 16] [--threads 2] [--model smollm2]

Why: llama-cpp-python keeps the KV cache of its previous call and reads only the tokens after the
longest common token prefix. Both orders share the system prompt; the grouped order
(``producer.inputs.requests_build.prefix_order``: type, then SQuAD paragraph, then item) also shares the task
instruction and the paragraph, so a request on an already-read paragraph reads only its question.

Requests: every SQuAD item of the bundled sample, prepared by the real ``ensure_prepared`` (seeded
shuffle) in a temporary folder, built by the real builder with the real treatment prompt and the
open-book instruction, one block (temperature 0, treatment). "today" is the builder's order before
issue 17 (the prepared order: each item built on its own, in turn); "grouped" is the builder's order
now. Generation: one ``llama_cpp.Llama`` (n_ctx 4096) and ``create_chat_completion`` per request, as the
in-process engine calls it. Rounds alternate (today grouped, grouped today, ...) so drift on a shared
machine cancels. Prompt tokens skipped by prefix reuse are quoted two ways: the common prefix of each
prompt's token list with the tokens cached before it (llama-cpp-python's own rule), and llama.cpp's
eval counters (prompt tokens minus tokens it evaluated as prompt). Set EXCELLENCE_NO_CPU_REPACK=1 (or
pass --no-repack) on a VM whose CPU advertises AMX it cannot run. On a busy machine use --threads 1:
two llama.cpp threads on two oversubscribed cores swing 3 to 5x between rounds (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_overhead import sample_run_files  # noqa: E402 - tools/ is on sys.path when a tool runs


@dataclass
class Tally:
    """What one order cost, summed over rounds."""

    requests: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    prompt_tokens: int = 0
    skipped_list: int = 0  # common prefix with the cached tokens (token lists)
    skipped_counter: int = 0  # prompt tokens minus llama.cpp's prompt-eval counter
    rates: list[float] = field(default_factory=list)


def bench_config(tmp: Path, model: str, threads: int, n_ctx: int, max_tokens: int) -> Any:
    """Every SQuAD item of the bundled sample, open-book, the real prompts; data in ``tmp``."""
    from config.schema import validate_config_dict

    return validate_config_dict({
        "backend": "local", "local_engine": "llama_cpp", "local_model": model,
        "n_ctx": n_ctx, "n_gpu_layers": 0, "n_threads": threads, "temps": [0.0], "samples_per_item": {"0.0": 1},
        "max_new_tokens": {"closed_book": max_tokens, "open_book": max_tokens}, "seed": 42,
        "sizes": {"squad_v2": None, "triviaqa": 0, "nq_open": 0},
        **sample_run_files(tmp),
    })


def build_orders(cfg: Any, items: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """{"today": the prepared order, "grouped": the builder's order}, treatment block at T = 0."""
    from producer.inputs.messages import load_prompt_texts
    from producer.inputs.requests_build import iter_trial_requests
    from producer.runs.trials import expand_trials

    trial = expand_trials(cfg)[0]
    texts = load_prompt_texts(cfg, trial.prompt_set)
    grouped = list(iter_trial_requests(cfg, trial, items, texts, conditions=("treatment",)))
    today = [r for item in items for r in iter_trial_requests(cfg, trial, [item], texts, conditions=("treatment",))]
    assert Counter(r.custom_id for r in today) == Counter(r.custom_id for r in grouped)
    return {"today": today, "grouped": grouped}


def adjacent_same_paragraph(requests: list[Any]) -> int:
    users = [r.body["messages"][1]["content"].split("QUESTION:")[0] for r in requests]
    return sum(1 for a, b in zip(users, users[1:], strict=False) if a == b)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def prompt_evals(llm: Any) -> int:
    """llama.cpp's count of tokens evaluated in prompt batches (more than one token per decode)."""
    import llama_cpp

    return int(llama_cpp.llama_perf_context(llm.ctx).n_p_eval)


def generate(llm: Any, body: dict[str, Any]) -> dict[str, Any]:
    """As the in-process engine calls it: unset top_p/top_k mean no filter, min_p 0."""
    return llm.create_chat_completion(messages=body["messages"], max_tokens=body["max_tokens"],
                                      temperature=body["temperature"], top_p=body.get("top_p", 1.0),
                                      top_k=body.get("top_k", 0), min_p=0.0, seed=body.get("seed"),
                                      stop=body.get("stop") or [])


def run_order(llm: Any, requests: list[Any], tally: Tally) -> float:
    """Generate every request in turn; adds to ``tally`` and returns this round's requests/s."""
    start, cpu0 = time.perf_counter(), time.process_time()
    for r in requests:
        cached = list(llm._input_ids)  # tokens whose KV entries the previous call left
        evals0 = prompt_evals(llm)
        out = generate(llm, r.body)
        n_prompt = int(out["usage"]["prompt_tokens"])
        prompt = list(llm._input_ids[:n_prompt])
        tally.prompt_tokens += n_prompt
        tally.skipped_list += common_prefix(cached, prompt)
        tally.skipped_counter += n_prompt - (prompt_evals(llm) - evals0)
    secs = time.perf_counter() - start
    tally.requests += len(requests)
    tally.seconds += secs
    tally.cpu_seconds += time.process_time() - cpu0
    tally.rates.append(len(requests) / secs)
    return len(requests) / secs


def load_note() -> str:
    return f"load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "load average n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of both orders (2: today grouped, grouped today)")
    ap.add_argument("--no-repack", action="store_true", help="same as EXCELLENCE_NO_CPU_REPACK=1")
    args = ap.parse_args(argv)

    from config.model_files import ModelFileError, resolve_model_path
    from producer.inputs.prepare import ensure_prepared
    from workers.engines.cpu_quirks import apply_from_env, disable_cpu_repack

    if args.no_repack:
        disable_cpu_repack()
    else:
        apply_from_env()
    try:
        path = resolve_model_path(args.model)
    except ModelFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import llama_cpp

    tmp = Path(tempfile.mkdtemp(prefix="bench_order_"))
    try:
        cfg = bench_config(tmp, args.model, args.threads, args.n_ctx, args.max_tokens)
        items = ensure_prepared(cfg).items
        orders = build_orders(cfg, items)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_paragraph = Counter(it["context"] for it in items)
    print(f"bundled SQuAD sample: {len(items)} questions on {len(per_paragraph)} paragraphs "
          f"({', '.join(str(n) for n in sorted(per_paragraph.values(), reverse=True))} questions each); "
          f"adjacent same-paragraph pairs: today {adjacent_same_paragraph(orders['today'])}, "
          f"grouped {adjacent_same_paragraph(orders['grouped'])}", flush=True)

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=args.n_ctx, n_gpu_layers=0, n_threads=args.threads,
                          n_threads_batch=args.threads, seed=42, verbose=False)
    system = orders["grouped"][0].body["messages"][0]
    warm = generate(llm, {"messages": [system, {"role": "user", "content": "Hi."}], "max_tokens": 1,
                          "temperature": 0.0})  # warm-up: pages in the weights, caches the system prompt
    warm_prompt = list(llm._input_ids[:warm["usage"]["prompt_tokens"]])
    first = generate(llm, orders["grouped"][0].body)
    system_tokens = common_prefix(warm_prompt, list(llm._input_ids[:first["usage"]["prompt_tokens"]]))
    print(f"model {path.name}; n_ctx {args.n_ctx}; n_threads {args.threads}; max_tokens {args.max_tokens}; "
          f"system part {system_tokens} tokens; {len(orders['today'])} requests per order; {args.rounds} rounds; "
          f"{load_note()} at the start", flush=True)
    tallies = {"today": Tally(), "grouped": Tally()}
    for rnd in range(args.rounds):
        for name in (("today", "grouped") if rnd % 2 == 0 else ("grouped", "today")):
            skipped0 = tallies[name].skipped_list
            rate = run_order(llm, orders[name], tallies[name])
            print(f"round {rnd + 1} {name:>7}: {rate:.3f} req/s, {tallies[name].skipped_list - skipped0} prompt "
                  f"tokens skipped ({load_note()})", flush=True)
    llm.close()
    for name, t in tallies.items():
        print(f"{name:>7}: {t.requests / t.seconds:.3f} req/s (rounds {', '.join(f'{x:.3f}' for x in t.rates)}); "
              f"prompt tokens {t.prompt_tokens}, skipped by prefix reuse {t.skipped_list} "
              f"({100 * t.skipped_list / t.prompt_tokens:.1f}%, token lists) / {t.skipped_counter} "
              f"(llama.cpp eval counter); of the user-message part {t.prompt_tokens - t.requests * system_tokens} "
              f"tokens, {t.skipped_list - t.requests * system_tokens} skipped; CPU {t.cpu_seconds:.1f} s")
    today, grouped = tallies["today"], tallies["grouped"]
    ratio = (grouped.requests / grouped.seconds) / (today.requests / today.seconds)
    print(f"ratio grouped/today: {ratio:.2f}x requests/s (CPU-time ratio {today.cpu_seconds / grouped.cpu_seconds:.2f}x;"
          f" target >= 1.3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
