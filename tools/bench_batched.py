"""Benchmark: the batched in-process llama.cpp engine (``n_parallel`` P) against today's sequential one.

Targets (issue 17): >= 1.5 x requests/s on the mixed and the decode-heavy workload at the best P, and
never below 0.95 x at the P that ``plan`` recommends for a workload (sequential where batching loses).

    python tools/bench_batched.py [--requests 24] [--parallel 2,4,8] [--rounds 2] [--workloads mixed,decode,prefill]
    python tools/bench_batched.py --demo-agreement      # P = 4 vs P = 1 answers on the demo config, T = 0

Workloads, built by the real builder (``producer.enqueue.chunked_requests``) from the bundled samples
with the real treatment prompt (config/prompts/treatment_system.txt, ~1,800 tokens), T = 0:
``mixed`` (SQuAD open-book + TriviaQA/NQ closed-book, 32 new tokens), ``decode`` (closed-book only,
64 new tokens) and ``prefill`` (SQuAD only, 16 new tokens: long fresh paragraphs, short answers).
Each engine runs the requests as ``workers.inference.process_chunk`` does: chunk by chunk (16), with
P threads into ``generate`` for the batched engine. Every configuration runs ``--rounds`` times in
alternating order (seq, P2, P4, P8, then reversed) so that drift on a shared machine cancels; model
loads are not timed, and each run starts from an empty cache. Prints requests/s, the ratio to the
sequential engine measured in the same run, and the share of answers identical to the sequential
ones (batching may change T = 0 answers at near-ties). Run it when the CPU is quiet; on a loaded
machine use ``--threads 1``: two llama.cpp threads on oversubscribed cores wait on each other at every
step, which punishes the sequential engine's many one-token steps and inflates the batched ratios.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from bench_overhead import sample_run_files  # tools/ is on sys.path when a tool runs

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {  # name -> (sizes, new tokens)
    "mixed": ({"squad_v2": 1, "triviaqa": 1, "nq_open": 1}, 32),
    "decode": ({"squad_v2": 0, "triviaqa": 1, "nq_open": 1}, 64),
    "prefill": ({"squad_v2": 1, "triviaqa": 0, "nq_open": 0}, 16),
}


def workload_requests(tmp: Path, name: str, n: int) -> list[list[Any]]:
    """The workload's treatment requests at T = 0, in the queue's chunks."""
    from config.schema import load_config
    from producer.enqueue import chunked_requests
    from producer.prepare import ensure_prepared

    shares, new_tokens = WORKLOADS[name]
    total = sum(shares.values())
    sizes = {k: (n * v + total - 1) // total if v else 0 for k, v in shares.items()}
    cfg = {
        "backend": "local", "local_engine": "llama_cpp", "local_model": "smollm2",
        "temps": [0.0], "samples_per_item": {"0.0": 1}, "seed": 42,
        "max_new_tokens": {"closed_book": new_tokens, "open_book": new_tokens},
        "sizes": sizes,
        **sample_run_files(tmp),
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    loaded = load_config(path)
    reqs = [r for r in chunked_requests(loaded, ensure_prepared(loaded).items) if r.condition == "treatment"][:n]
    chunks: dict[int, list[Any]] = {}
    for r in reqs:
        chunks.setdefault(r.chunk, []).append(r)
    return list(chunks.values())


def engine_cfg(p: int, threads: int):
    from config.schema import validate_config_dict

    return validate_config_dict({"local_engine": "llama_cpp", "local_model": "smollm2", "n_ctx": 4096,
                                 "n_gpu_layers": 0, "n_threads": threads, "n_parallel": p, "seed": 42},
                                "bench", check_files=False)


def run_engine(p: int, chunks: list[list[Any]], threads: int) -> tuple[float, list[str], dict[str, Any]]:
    """(seconds, answers, engine counters) for P (0: today's sequential engine), from an empty cache."""
    from workers.engines.base import GenerationParams
    from workers.engines.llama_cpp_batched import BatchedLlamaCppEngine
    from workers.engines.llama_cpp_engine import LlamaCppEngine, unload_all

    unload_all()  # each run loads afresh (not timed) and starts with an empty cache
    engine = LlamaCppEngine(engine_cfg(1, threads)) if p == 0 else BatchedLlamaCppEngine(engine_cfg(p, threads))
    answers: list[str] = []
    t0 = time.perf_counter()
    for chunk in chunks:
        calls = [(r.body["messages"], GenerationParams.from_body(r.body)) for r in chunk]
        if p == 0:
            answers += [engine.generate(*c).text for c in calls]
        else:
            with ThreadPoolExecutor(p) as pool:
                answers += [r.text for r in pool.map(lambda c: engine.generate(*c), calls)]
    seconds = time.perf_counter() - t0
    stats = engine.stats() if p else {}
    unload_all()
    return seconds, answers, stats


def demo_agreement(threads: int) -> None:
    """P = 4 vs P = 1 (the batched path, equal to today's engine) on the demo config's requests, T = 0."""
    from config.schema import load_config
    from producer.enqueue import chunked_requests
    from producer.prepare import ensure_prepared

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
            seconds, answers, _ = run_engine(p, list(chunks.values()), threads)
            out[p] = answers
            print(f"demo P={p}: {len(answers)} requests in {seconds:.1f}s", flush=True)
        by_cond: dict[str, list[bool]] = {}
        for r, a, b in zip(reqs, out[1], out[4], strict=True):
            by_cond.setdefault(r.condition, []).append(a == b)
        same = sum(sum(v) for v in by_cond.values())
        print(json.dumps({"demo_agreement_p4_vs_p1": round(same / len(reqs), 3), "identical": same,
                          "requests": len(reqs), "by_condition": {k: f"{sum(v)}/{len(v)}" for k, v in by_cond.items()}}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=24, help="requests per workload")
    ap.add_argument("--parallel", default="2,4,8", help="values of P to measure")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of every configuration, alternating order")
    ap.add_argument("--workloads", default="mixed,decode,prefill")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--demo-agreement", action="store_true", help="only measure P = 4 vs P = 1 on the demo")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.demo_agreement:
        demo_agreement(args.threads)
        return
    configs = [0, *(int(p) for p in args.parallel.split(","))]
    tmp = Path(tempfile.mkdtemp(prefix="bench_batched_"))
    try:
        for name in args.workloads.split(","):
            chunks = workload_requests(tmp / name, name, args.requests)
            n = sum(len(c) for c in chunks)
            secs = dict.fromkeys(configs, 0.0)
            answers: dict[int, list[str]] = {}
            stats: dict[int, dict[str, Any]] = {}
            for rnd in range(args.rounds):
                for p in (configs if rnd % 2 == 0 else configs[::-1]):
                    s, a, st = run_engine(p, chunks, args.threads)
                    secs[p] += s
                    answers.setdefault(p, a)
                    stats[p] = st
                    print(f"{name} round {rnd + 1} {'seq' if p == 0 else f'P={p}'}: {n / s:.3f} req/s", flush=True)
            base = n * args.rounds / secs[0]
            for p in configs:
                rate = n * args.rounds / secs[p]
                agree = sum(a == b for a, b in zip(answers[p], answers[0], strict=True))
                row = {"workload": name, "engine": "sequential" if p == 0 else f"P={p}", "requests": n,
                       "req_per_s": round(rate, 3), "ratio": round(rate / base, 2), "same_answers": f"{agree}/{n}"}
                if p:
                    row["prefix_reused"] = f"{stats[p]['prefix_tokens_reused']}/{stats[p]['prompt_tokens']}"
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
