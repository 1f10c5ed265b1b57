"""Benchmark: the batched in-process llama.cpp engine (``n_parallel`` P) against today's sequential one.

Targets (issue 17): >= 1.5 x requests/s on the mixed and the decode-heavy workload at the best P, and
never below 0.95 x at the P that ``plan`` recommends for a workload (sequential where batching loses).

    python tools/bench_batched.py [--requests 200] [--parallel 2,4,8] [--rounds 2] [--workloads mixed,decode,prefill] [--cold]
    python tools/bench_batched.py --step-costs          # the cost model: decode step of 1 and of P sequences, prefill per token
    python tools/bench_batched.py --demo-agreement      # P = 4 vs P = 1 answers on the demo config, T = 0
    python tools/bench_batched.py --gpu-layers -1 --parallel 2,4,8,16   # on a CUDA machine (CUDA build of llama-cpp-python)

Workloads, built by the real builder (``producer.planning.enqueue.chunked_requests``) from the bundled samples
with the real treatment prompt (config/prompts/treatment_system.txt, ~1,800 tokens), T = 0:
``mixed`` (SQuAD open-book + TriviaQA/NQ closed-book, 32 new tokens; 84 requests), ``decode``
(closed-book only, 64 new tokens, each question once at T = 0 and three times at T = 0.7, seeded;
200 requests) and ``prefill`` (SQuAD only, 16 new tokens: long fresh paragraphs, short answers; 34
requests). With a few dozen requests the drain of the last P answers (one of them often 30-60 tokens
long, nearly alone) is a quarter of the decode steps; a run of thousands has one such drain per model
load. Each engine runs the requests as ``workers.inference.process_chunk`` does: in chunks of 16, with
the batched engine's ``concurrency`` threads into ``generate`` (P decoding, P more waiting ready), fed
across chunks (``workers.inference.feed_slots``: the next chunk is taken while one drains, so no slot
idles at a chunk's tail). The P that ``plan`` recommends from the step costs and the workload's token
shape (``telemetry.batching.recommend_from_costs``) is printed and measured too. Every configuration runs ``--rounds`` times in
alternating order (seq, P2, P4, P8, then reversed) so that drift on a shared machine cancels. Model
loads are not timed, and neither is the first read of the system prompt (one untimed warm-up request,
the same for both engines): a run reads it once per block of hundreds of requests, and with a few
dozen requests it would be most of the time measured (``--cold`` times it too).

Prints the step costs first (what bounds every ratio), then per workload and engine: requests/s, the
ratio to the sequential engine measured in the same run, the share of answers identical to the
sequential ones (batching may change T = 0 answers at near-ties), the mean completion and prefilled
tokens per request, the sequences per decode step, and ``ceiling``: the best ratio those step costs
allow for those token counts. Run it when the CPU is quiet; on a loaded machine use ``--threads 1``:
two llama.cpp threads on oversubscribed cores wait on each other at every step, which punishes the
sequential engine's many one-token steps and inflates the batched ratios.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from bench_overhead import sample_run_files  # tools/ is on sys.path when a tool runs

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {  # name -> (dataset shares, new tokens, samples per temperature)
    "mixed": ({"squad_v2": 1, "triviaqa": 1, "nq_open": 1}, 32, {"0.0": 1}),
    # the bundled closed-book samples hold 50 questions: each also three times at T = 0.7 (the default
    # config samples T = 0.7 five times), so that the last answers' drain is a small part of the workload
    "decode": ({"squad_v2": 0, "triviaqa": 1, "nq_open": 1}, 64, {"0.0": 1, "0.7": 3}),
    "prefill": ({"squad_v2": 1, "triviaqa": 0, "nq_open": 0}, 16, {"0.0": 1}),
}


def workload_requests(tmp: Path, name: str, n: int) -> tuple[list[list[Any]], Any, list[dict[str, Any]]]:
    """(the workload's treatment requests in the queue's chunks, its config, its items)."""
    from config.schema import load_config
    from producer.inputs.prepare import ensure_prepared
    from producer.planning.enqueue import chunked_requests

    shares, new_tokens, samples = WORKLOADS[name]
    total = sum(shares.values()) * sum(samples.values())
    sizes = {k: (n * v + total - 1) // total if v else 0 for k, v in shares.items()}
    cfg = {
        "backend": "local", "local_engine": "llama_cpp", "local_model": "smollm2",
        "temps": [float(t) for t in samples], "samples_per_item": samples, "seed": 42,
        "max_new_tokens": {"closed_book": new_tokens, "open_book": new_tokens},
        "sizes": sizes,
        **sample_run_files(tmp),
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    loaded = load_config(path)
    items = ensure_prepared(loaded).items
    reqs = [r for r in chunked_requests(loaded, items) if r.condition == "treatment"][:n]
    chunks: dict[int, list[Any]] = {}
    for r in reqs:
        chunks.setdefault(r.chunk, []).append(r)
    return list(chunks.values()), loaded, items


GPU_LAYERS = [0]  # --gpu-layers: layers offloaded (-1: all), for every engine of the run


def engine_cfg(p: int, threads: int):
    from config.schema import validate_config_dict

    return validate_config_dict({"local_engine": "llama_cpp", "local_model": "smollm2", "n_ctx": 4096,
                                 "n_gpu_layers": GPU_LAYERS[0], "n_threads": threads, "n_parallel": p, "seed": 42},
                                "bench", check_files=False)


def warm_up(engine: Any, first: Any) -> None:
    """One untimed request with the workload's system prompt and instruction and a two-word user
    message: the steady state of a real run, where the system prompt is read once per block of
    hundreds of requests. Both engines get the same one."""
    from workers.engines.base import GenerationParams

    messages = [dict(m) for m in first.body["messages"]]
    messages[-1]["content"] = "Warm-up."
    engine.generate(messages, GenerationParams.from_body({**first.body, "max_tokens": 1}))


def run_engine(p: int, chunks: list[list[Any]], threads: int, cold: bool = False) -> tuple[float, list[Any], dict[str, Any]]:
    """(seconds, results, engine counters) for P (0: today's sequential engine), from an empty cache,
    warmed with the system prompt unless ``cold``."""
    from workers.engines.base import GenerationParams
    from workers.engines.llama_cpp_batched import BatchedLlamaCppEngine
    from workers.engines.llama_cpp_engine import LlamaCppEngine, unload_all
    from workers.inference import feed_slots

    unload_all()  # each run loads afresh (not timed) and starts with an empty cache
    engine = LlamaCppEngine(engine_cfg(1, threads)) if p == 0 else BatchedLlamaCppEngine(engine_cfg(p, threads))
    if not cold:
        warm_up(engine, chunks[0][0])
    before = engine.stats() if p else {}
    t0 = time.perf_counter()
    calls = [[(r.body["messages"], GenerationParams.from_body(r.body)) for r in chunk] for chunk in chunks]
    if p == 0:
        results = [engine.generate(*c) for chunk in calls for c in chunk]
    else:  # as the inference worker: the engine's threads, the next chunk taken while one drains (feed_slots)
        numbered = iter([list(enumerate(chunk, start)) for chunk, start in
                         zip(calls, itertools.accumulate([0] + [len(c) for c in calls]), strict=False)])
        answers: dict[int, Any] = {}

        def run(item: tuple[int, Any]) -> str:
            answers[item[0]] = engine.generate(*item[1])
            return "done"

        feed_slots(engine.concurrency, next(numbered), lambda: next(numbered, None), run, lambda *_: None)
        results = [answers[i] for i in range(len(answers))]
    seconds = time.perf_counter() - t0
    stats = {k: v - before.get(k, 0) for k, v in engine.stats().items()} if p else {}
    unload_all()
    return seconds, results, stats


def demo_agreement(threads: int) -> None:
    """P = 4 vs P = 1 (the batched path, equal to today's engine) on the demo config's requests, T = 0."""
    from config.schema import load_config
    from producer.inputs.prepare import ensure_prepared
    from producer.planning.enqueue import chunked_requests

    tmp = Path(tempfile.mkdtemp(prefix="bench_batched_demo_"))
    try:
        raw = yaml.safe_load((ROOT / "config/eval_config.demo.yaml").read_text(encoding="utf-8"))
        raw["paths"] = {"data_dir": str(tmp / "data"), "raw_dir": str(tmp / "data/raw"),
                        "prepared_dir": str(tmp / "data/prepared"), "batch_inputs_dir": str(tmp / "data/batch"),
                        "experiments_dir": str(tmp / "experiments")}
        for prompts in raw.get("prompt_sets", {}).values():
            for cond, rel in prompts.items():
                prompts[cond] = str(ROOT / rel)
        path = tmp / "demo.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        cfg = load_config(path)
        reqs = list(chunked_requests(cfg, ensure_prepared(cfg).items))
        chunks: dict[int, list[Any]] = {}
        for r in reqs:
            chunks.setdefault(r.chunk, []).append(r)
        out = {}
        for p in (1, 4):
            seconds, results, _ = run_engine(p, list(chunks.values()), threads, cold=True)
            out[p] = [r.text for r in results]
            print(f"demo P={p}: {len(results)} requests in {seconds:.1f}s", flush=True)
        by_cond: dict[str, list[bool]] = {}
        for r, a, b in zip(reqs, out[1], out[4], strict=True):
            by_cond.setdefault(r.condition, []).append(a == b)
        same = sum(sum(v) for v in by_cond.values())
        print(json.dumps({"demo_agreement_p4_vs_p1": round(same / len(reqs), 3), "identical": same,
                          "requests": len(reqs), "by_condition": {k: f"{sum(v)}/{len(v)}" for k, v in by_cond.items()}}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def all_step_costs(parallel: list[int], threads: int) -> dict[str, Any]:
    """The cost model behind every ratio, measured as ``plan --measure`` does
    (``workers.engines.llama_cpp_step_costs``) but behind the cached treatment prompt: one decode step of
    1 and of each P sequences (each P measured and every P plan chooses from), and the prefill cost per token."""
    from telemetry.step_costs import MEASURE_PARALLEL
    from workers.engines.llama_cpp_step_costs import measure

    system = (ROOT / "config/prompts/treatment_system.txt").read_text(encoding="utf-8")
    every = sorted({*MEASURE_PARALLEL, *parallel})  # plan's candidates too: the bench checks its recommendation
    costs = measure(engine_cfg(max(every), threads), parallel=every, prefix=system)
    steps = costs["decode_step_ms"]
    print(json.dumps({**costs, "pure_decode_ceiling": {p: round(p * steps[1] / steps[p], 2) for p in every}}),
          flush=True)
    return costs


def ceiling(costs: dict[str, Any], p: int, prefilled: float, completion: float) -> float:
    """The best ratio the step costs allow for requests that prefill ``prefilled`` and generate
    ``completion`` tokens on average, every step decoding P sequences."""
    steps, prefill = costs["decode_step_ms"], prefilled * costs["prefill_ms_per_token"]
    return round((prefill + completion * steps[1]) / (prefill + completion * steps[p] / p), 2)


def recommended(costs: dict[str, Any], cfg: Any, items: list[dict[str, Any]]) -> tuple[int, float]:
    """(P, predicted ratio) that ``plan`` recommends for this workload from these step costs."""
    from telemetry.batching import measure_workload, recommend_from_costs
    from telemetry.step_costs import StepCosts

    work = measure_workload(cfg, items)
    record = StepCosts(key="bench", model_file="smollm2", machine="this run", settings={}, measured_at="",
                       seconds=0, **costs)
    return recommend_from_costs(record, work.fresh_tokens, work.new_tokens, max(1, work.max_parallel(cfg.n_ctx)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="requests per workload (at most what the samples hold)")
    ap.add_argument("--parallel", default="2,4,8", help="values of P to measure")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of every configuration, alternating order")
    ap.add_argument("--workloads", default="mixed,decode,prefill")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gpu-layers", type=int, default=0, help="layers to offload to the GPU (-1: all; needs a GPU build)")
    ap.add_argument("--cold", action="store_true",
                    help="time the first read of the system prompt too (it is read once per block in a run)")
    ap.add_argument("--demo-agreement", action="store_true", help="only measure P = 4 vs P = 1 on the demo")
    ap.add_argument("--step-costs", action="store_true",
                    help="only measure one decode step of 1 and of P sequences and the prefill cost per token")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    GPU_LAYERS[0] = args.gpu_layers
    if args.demo_agreement:
        demo_agreement(args.threads)
        return
    parallel = [int(p) for p in args.parallel.split(",")]
    costs = all_step_costs(parallel, args.threads)
    if args.step_costs:
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_batched_"))
    try:
        for name in args.workloads.split(","):
            chunks, cfg, items = workload_requests(tmp / name, name, args.requests)
            rec, predicted = recommended(costs, cfg, items)
            print(json.dumps({"workload": name, "recommended_P": rec, "predicted_ratio": round(predicted, 2)}),
                  flush=True)
            configs = [0, *parallel] + ([rec] if rec > 1 and rec not in parallel else [])
            n = sum(len(c) for c in chunks)
            secs = dict.fromkeys(configs, 0.0)
            results: dict[int, list[Any]] = {}
            stats: dict[int, dict[str, Any]] = {}
            for rnd in range(args.rounds):
                for p in (configs if rnd % 2 == 0 else configs[::-1]):
                    s, res, st = run_engine(p, chunks, args.threads, args.cold)
                    secs[p] += s
                    results.setdefault(p, res)
                    stats[p] = st
                    print(f"{name} round {rnd + 1} {'seq' if p == 0 else f'P={p}'}: {n / s:.3f} req/s", flush=True)
            base = n * args.rounds / secs[0]
            for p in configs:
                rate = n * args.rounds / secs[p]
                agree = sum(a.text == b.text for a, b in zip(results[p], results[0], strict=True))
                row = {"workload": name, "engine": "sequential" if p == 0 else f"P={p}", "recommended": max(p, 1) == rec, "requests": n,
                       "req_per_s": round(rate, 3), "ratio": round(rate / base, 2), "same_answers": f"{agree}/{n}",
                       "completion_tokens_mean": round(sum(r.usage.completion_tokens or 0 for r in results[p]) / n, 1)}
                if p:
                    st = stats[p]
                    row.update(prefilled_tokens_mean=round(st["prefill_tokens"] / n, 1),
                               prefix_reused=f"{st['prefix_tokens_reused']}/{st['prompt_tokens']}",
                               sequences_per_step=round(st["sequences_decoded"] / max(st["decode_steps"], 1), 2),
                               late_refills=st["late_refills"],
                               ceiling=ceiling(costs, p, st["prefill_tokens"] / n, row["completion_tokens_mean"]))
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
