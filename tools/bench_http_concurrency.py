"""Benchmark: OpenAI-compatible requests with 1 vs N in flight against a local server.

Why: with an HTTP engine the lever is ``max_concurrent_requests``. A server with parallel slots and
continuous batching (llama.cpp's ``llama-server -np 4``, vLLM, Ollama with OLLAMA_NUM_PARALLEL=4) turns
concurrency into throughput. llama-cpp-python's own server (``python -m llama_cpp.server``, the only
one installable here) holds one model behind a lock and serialises requests, so on it the ratio is
about 1x: this script reports what it measures, and says which server it used.

    python tools/bench_http_concurrency.py                  # starts llama_cpp.server on 127.0.0.1
    python tools/bench_http_concurrency.py --endpoint http://127.0.0.1:8080/v1 --model x   # your server

Requests are the project's own (``iter_trial_requests``, prefix-aware order), sent in threads through
the project's openai_compat engine (``POST /v1/chat/completions``), or plain ``requests`` if that
engine is absent.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from config.schema import load_config  # noqa: E402
from producer.inputs.messages import load_prompt_texts  # noqa: E402
from producer.inputs.requests_build import iter_trial_requests  # noqa: E402
from producer.runs.trials import expand_trials  # noqa: E402
from tools.bench_prefix_order import closed_items, load_note, model_path  # noqa: E402

SERVER = """
import sys
sys.path.insert(0, {root!r})
from tools.bench_prefix_order import disable_cpu_repack
if {no_repack!r}:
    disable_cpu_repack()
from llama_cpp.server.__main__ import main
sys.argv = ["llama_cpp.server"] + sys.argv[1:]
main()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, proc: subprocess.Popen | None, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"error: server exited with status {proc.returncode}")
        try:
            if requests.get(f"{base}/models", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit("error: server did not become ready")


def send(base: str, model: str, body: dict[str, Any]) -> int:
    payload = {"model": model, **body}
    resp = requests.post(f"{base}/chat/completions", json=payload, timeout=600)
    resp.raise_for_status()
    return int(resp.json()["usage"]["completion_tokens"])


def engine_sender(cfg: Any, base: str, model: str, in_flight: int):
    """The project's openai_compat engine (workers/engines/openai_compat.py) when present, else None."""
    try:
        from workers.engines.base import GenerationParams
        from workers.engines.openai_compat import OpenAICompatEngine
    except ImportError:
        return None
    ecfg = cfg.model_copy(update={"local_engine": "openai_compat", "local_endpoint": base, "local_model": model,
                                  "max_concurrent_requests": in_flight})
    engine = OpenAICompatEngine(ecfg, model)

    def sender(body: dict[str, Any]) -> int:
        return int(engine.generate(body["messages"], GenerationParams.from_body(body)).usage.completion_tokens or 0)

    return sender


def run(cfg: Any, base: str, model: str, bodies: list[dict[str, Any]], in_flight: int) -> tuple[float, int]:
    sender = engine_sender(cfg, base, model, in_flight) or (lambda b: send(base, model, b))
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        tokens = sum(pool.map(sender, bodies))
    return time.perf_counter() - start, tokens


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "eval_config.demo.yaml"))
    ap.add_argument("--endpoint", default=None, help="an already running server's /v1 URL (else one is started)")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--requests", type=int, default=12)
    ap.add_argument("--in-flight", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--n-threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of both runs, order alternating")
    ap.add_argument("--no-repack", action="store_true", help="see bench_prefix_order.py --no-repack")
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    trial = expand_trials(cfg)[0]
    texts = load_prompt_texts(cfg, trial.prompt_set)
    items = closed_items((args.requests + 1) // 2)
    bodies = [dict(r.body, max_tokens=args.max_tokens) for r in iter_trial_requests(cfg, trial, items, texts)]
    bodies = bodies[: args.requests]

    proc = None
    if args.endpoint:
        base, server = args.endpoint.rstrip("/"), f"external server at {args.endpoint}"
    else:
        port = free_port()
        base = f"http://127.0.0.1:{port}/v1"
        gguf = model_path(args.model)
        code = SERVER.format(root=str(ROOT), no_repack=args.no_repack)
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "--model", str(gguf), "--model_alias", args.model,
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(cfg.n_ctx),
             "--n_threads", str(args.n_threads), "--n_gpu_layers", str(cfg.n_gpu_layers)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        server = (f"llama-cpp-python server (python -m llama_cpp.server, one model behind a lock: "
                  f"requests are serialised), {gguf.name}, n_ctx {cfg.n_ctx}, n_threads {args.n_threads}")
    try:
        wait_ready(base, proc)
        via = "workers.engines.openai_compat" if engine_sender(cfg, base, args.model, 1) else "plain requests"
        print(f"server: {server}; client: {via}; {len(bodies)} requests per run, max_tokens {args.max_tokens}",
              flush=True)
        send(base, args.model, bodies[0])  # warm-up
        print(f"machine: {load_note()} at the start", flush=True)
        results = {1: 0.0, args.in_flight: 0.0}
        for rnd in range(args.rounds):  # alternate the order so drift on a shared machine cancels
            order = (1, args.in_flight) if rnd % 2 == 0 else (args.in_flight, 1)
            for n in order:
                secs, toks = run(cfg, base, args.model, bodies, n)
                results[n] += secs
                print(f"round {rnd + 1}: {n} in flight: {len(bodies)} requests in {secs:6.1f} s = "
                      f"{len(bodies) / secs:6.3f} req/s ({toks} completion tokens)", flush=True)
        print(f"machine: {load_note()} at the end")
        print(f"ratio ({args.in_flight} in flight / 1 in flight, req/s): {results[1] / results[args.in_flight]:.2f}x")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
