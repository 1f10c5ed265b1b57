"""Benchmark: the queue's overhead. The same requests through (a) a plain llama-cpp-python loop and
(b) ``python -m producer run --workers 1``, same model and settings; prints requests/s and the ratio.

Target: (b) >= 0.95 x (a).

    python tools/bench_overhead.py [--requests 200] [--model smollm2]

(a) loads the model and calls ``create_chat_completion`` for each request in the queue's order.
(b) is the real command in a subprocess, timed from launch to exit (spawned worker, model load,
ledger writes, export, scoring and report included); its inference window (first to last result,
from the ledger) is printed too. Requests: the bundled samples at temperatures 0.0 and 0.7, built by
the real builder; a temporary folder holds the queue, data and results. Both run ``--rounds`` times in
alternating order (a b, b a, ...) so that drift on a shared machine cancels. Run it when the CPU is quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def sample_run_files(tmp: Path) -> dict:
    """The config keys every benchmark shares (bench_order and bench_batched import it): the bundled
    samples, the real prompts and task instructions, data and results under ``tmp``, no telemetry."""
    return {
        "data": {"squad_v2": "sample", "triviaqa": "sample", "nq_open": "sample"},
        "paths": {"data_dir": str(tmp / "data"), "raw_dir": str(tmp / "data/raw"),
                  "prepared_dir": str(tmp / "data/prepared"), "batch_inputs_dir": str(tmp / "data/batch"),
                  "experiments_dir": str(tmp / "experiments")},
        "prompt_sets": {"default": {"control": str(ROOT / "config/prompts/control_system.txt"),
                                    "treatment": str(ROOT / "config/prompts/treatment_system.txt")}},
        "task_instructions": {"open_book": str(ROOT / "config/task_instructions/open_book.txt"),
                              "closed_book": str(ROOT / "config/task_instructions/closed_book.txt")},
        "enable_local_telemetry": False, "prevent_sleep": False,
    }


def bench_config(tmp: Path, n_requests: int, model: str, threads: int) -> Path:
    items = max(1, n_requests // 4)  # x 2 conditions x 2 temperatures
    squad = min(34, items * 2 // 5)
    trivia = min(25, (items - squad + 1) // 2)
    nq = min(25, items - squad - trivia)
    cfg = {
        "backend": "local", "local_engine": "llama_cpp", "local_model": model,
        "n_ctx": 4096, "n_gpu_layers": 0, "n_threads": threads,
        "temps": [0.0, 0.7], "samples_per_item": {"0.0": 1, "0.7": 1},
        "max_new_tokens": {"closed_book": 24, "open_book": 32}, "seed": 42,
        "sizes": {"squad_v2": squad, "triviaqa": trivia, "nq_open": nq},
        "stats": {"bootstrap_samples": 200, "permutation_samples": 200},
        **sample_run_files(tmp),
    }
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def plain_loop(cfg_path: Path) -> tuple[int, float, float]:
    """(requests, seconds including model load, seconds of the loop alone)."""
    from config.model_files import resolve_model_path
    from config.schema import load_config
    from producer.inputs.prepare import ensure_prepared
    from producer.planning.enqueue import chunked_requests

    cfg = load_config(cfg_path)
    requests = list(chunked_requests(cfg, ensure_prepared(cfg).items))
    import llama_cpp

    t0 = time.perf_counter()
    llm = llama_cpp.Llama(model_path=str(resolve_model_path(cfg.local_model)), n_ctx=cfg.n_ctx,
                          n_gpu_layers=cfg.n_gpu_layers, n_threads=cfg.n_threads,
                          n_threads_batch=cfg.n_threads, seed=cfg.seed, verbose=False)
    t1 = time.perf_counter()
    for r in requests:
        b = r.body
        llm.create_chat_completion(messages=b["messages"], temperature=b["temperature"], max_tokens=b["max_tokens"],
                                   top_p=1.0, top_k=0, min_p=0.0, seed=b.get("seed"), stop=b.get("stop") or [])
    t2 = time.perf_counter()
    llm.close()
    return len(requests), t2 - t0, t2 - t1


def producer_run(cfg_path: Path, queue: Path) -> tuple[int, float, float]:
    env = dict(os.environ, EXCELLENCE_QUEUE_DIR=str(queue), PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "producer", "run", "--config", str(cfg_path), "--workers", "1"],
                         cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8")
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"producer run failed: {out.stderr.strip().splitlines()[-1:]}")
    conn = sqlite3.connect(str(queue / "ledger.sqlite3"))
    n, first, last = conn.execute("select count(*), min(created_at), max(created_at) from results").fetchone()
    lat = conn.execute("select min(latency_s) from results").fetchone()[0] or 0.0
    conn.close()
    return n, wall, (last - first) + lat  # window from the first request's start to the last result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="multiple of 4, at most 336 (bundled samples)")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of both (2: a b then b a, so drift cancels)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    tmp = Path(tempfile.mkdtemp(prefix="bench_overhead_"))
    a_total = a_loop = b_wall = b_window = 0.0
    n_a = n_b = 0
    try:
        cfg_path = bench_config(tmp, args.requests, args.model, args.threads)
        print(json.dumps({"requests": args.requests, "model": args.model, "n_threads": args.threads,
                          "rounds": args.rounds}), flush=True)
        for rnd in range(args.rounds):
            for which in (("a", "b") if rnd % 2 == 0 else ("b", "a")):
                if which == "a":
                    n, total, loop = plain_loop(cfg_path)
                    n_a, a_total, a_loop = n_a + n, a_total + total, a_loop + loop
                    print(f"round {rnd + 1} (a) plain loop: {n} requests, {total:.1f}s with model load, "
                          f"{loop:.1f}s loop", flush=True)
                else:
                    queue = tmp / f"queue{rnd}"
                    n, wall, window = producer_run(cfg_path, queue)
                    shutil.rmtree(tmp / "experiments", ignore_errors=True)
                    n_b, b_wall, b_window = n_b + n, b_wall + wall, b_window + window
                    print(f"round {rnd + 1} (b) producer run: {n} requests, {wall:.1f}s end to end, "
                          f"{window:.1f}s inference window", flush=True)
        print(f"(a) plain llama-cpp-python loop: {n_a / a_total:.3f} req/s incl. model load, "
              f"{n_a / a_loop:.3f} req/s loop only")
        print(f"(b) producer run --workers 1:     {n_b / b_wall:.3f} req/s end to end (spawn, load, export, "
              f"scoring, report), {n_b / b_window:.3f} req/s inference window")
        print(f"ratio (b)/(a) end to end: {(n_b / b_wall) / (n_a / a_total):.3f}   "
              f"inference window vs loop: {(n_b / b_window) / (n_a / a_loop):.3f}   (target >= 0.95)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
