"""How many answers agree across two engines (e.g. in-process llama.cpp vs an OpenAI-compatible server).

Why: switching engine must not change the experiment. With the same items, model and temperature 0,
two engines should give the same answers; prefix caching and continuous batching in servers can make
a few differ (docs/architecture.md fact 7), and this script says how many.

    python tools/engine_parity.py compare A/predictions.csv B/predictions.csv
    python tools/engine_parity.py run --config-a A.yaml --config-b B.yaml --limit-items 2 --out parity/
    python tools/engine_parity.py demo [--config config/eval_config.demo.yaml]

``run`` sends the first trial's requests of each config through its engine (``--max-requests`` caps
them), writes ``<out>/a/predictions.csv`` and ``<out>/b/predictions.csv`` with the project's writer,
then compares them. Exit status 1 when the two files differ in schema or in custom_ids.

``demo`` (issue 23: one sampler on every engine) sends the config's first trial at T = 0 through
in-process llama.cpp, llama-server (llama-cpp-python's OpenAI-compatible server) and the Ollama test
server backed by the same GGUF (tests/support/servers/fake_ollama.py: Ollama's option names and
defaults), and also to that server with the options our client sent before the neutral sampler (no
penalties, so Ollama's repeat_penalty 1.1 applies; ``stop: []``). It prints how many answers of each
are identical to the in-process engine's; docs/engines.md quotes it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def read_predictions(path: Path) -> tuple[list[str], dict[str, dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = {row["custom_id"]: row for row in reader}
        return list(reader.fieldnames or []), rows


def _norm(text: str) -> str:
    return " ".join(text.split())


def compare(path_a: Path, path_b: Path, show: int = 3) -> tuple[int, list[str]]:
    """(exit status, report lines)."""
    cols_a, rows_a = read_predictions(path_a)
    cols_b, rows_b = read_predictions(path_b)
    lines = [f"schema identical: {'yes' if cols_a == cols_b else 'NO'} ({len(cols_a)} columns: {', '.join(cols_a)})"]
    if cols_a != cols_b:
        lines.append(f"  a only: {sorted(set(cols_a) - set(cols_b))}; b only: {sorted(set(cols_b) - set(cols_a))}")
    common = sorted(set(rows_a) & set(rows_b))
    missing = len(set(rows_a) ^ set(rows_b))
    agree = [cid for cid in common if _norm(rows_a[cid]["response_text"]) == _norm(rows_b[cid]["response_text"])]
    pct = 100.0 * len(agree) / len(common) if common else 0.0
    lines.append(f"answers agree: {len(agree)} of {len(common)} ({pct:.0f}%)"
                 + (f"; {missing} custom_id(s) in only one file" if missing else ""))
    same_finish = sum(rows_a[c]["finish_reason"] == rows_b[c]["finish_reason"] for c in common)
    same_completion = sum(rows_a[c]["completion_tokens"] == rows_b[c]["completion_tokens"] for c in common)
    lines.append(f"same finish_reason: {same_finish} of {len(common)}; same completion_tokens: {same_completion} of {len(common)}")
    for cid in [c for c in common if c not in agree][:show]:
        lines.append(f"  differs {cid}: a={_norm(rows_a[cid]['response_text'])[:60]!r} b={_norm(rows_b[cid]['response_text'])[:60]!r}")
    status = 0 if cols_a == cols_b and not missing else 1
    return status, lines


def generate(config: Path, out_csv: Path, limit_items: int | None, max_requests: int | None) -> int:
    """Run the first trial of ``config`` through its configured engine; returns the rows written."""
    from config.schema import load_config
    from producer.inputs.messages import load_prompt_texts
    from producer.inputs.prepare import ensure_prepared
    from producer.inputs.requests_build import iter_trial_requests
    from producer.runs.results_io import raw_result_row, write_predictions_csv
    from producer.runs.trials import expand_trials
    from workers.engines.base import GenerationParams
    from workers.engines.cpu_quirks import apply_from_env
    from workers.engines.registry import create_engine

    apply_from_env()  # EXCELLENCE_NO_CPU_REPACK=1 on VMs whose CPU advertises AMX it cannot run
    cfg = load_config(config)
    prepared = ensure_prepared(cfg, limit_items=limit_items)
    trial = expand_trials(cfg)[0]
    requests = list(iter_trial_requests(cfg, trial, prepared.items, load_prompt_texts(cfg, trial.prompt_set)))
    requests = requests[:max_requests] if max_requests else requests
    engine = create_engine(cfg, trial.model)
    rows = []
    try:
        for i, req in enumerate(requests, 1):
            result = engine.generate(req.body["messages"], GenerationParams.from_body(req.body))
            usage = {"prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens,
                     "total_tokens": result.usage.total_tokens}
            rows.append(raw_result_row(req.custom_id, result.text, result.finish_reason, usage, result.request_id,
                                       result.latency_s, result.engine))
            print(f"  {engine.name}: {i}/{len(requests)}", file=sys.stderr, flush=True)
    finally:
        engine.close()
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    return write_predictions_csv(rows, out_csv)


def _first_trial(config: Path, limit_items: int | None, out: Path) -> tuple[Any, list[Any]]:
    """The config (paths under ``out``) and its first trial's requests at temperature 0."""
    from config.schema import load_config
    from producer.inputs.messages import load_prompt_texts
    from producer.inputs.prepare import ensure_prepared
    from producer.inputs.requests_build import iter_trial_requests
    from producer.runs.trials import expand_trials

    cfg = load_config(config)
    paths = {k: str(out / k) for k in ("data_dir", "raw_dir", "prepared_dir", "batch_inputs_dir", "experiments_dir")}
    cfg = cfg.model_copy(update={"paths": cfg.paths.model_copy(update=paths)})
    trial = expand_trials(cfg)[0]
    items = ensure_prepared(cfg, limit_items=limit_items).items
    reqs = [r for r in iter_trial_requests(cfg, trial, items, load_prompt_texts(cfg, trial.prompt_set))
            if float(r.body["temperature"]) == 0.0]
    return cfg, reqs


def _texts(cfg: Any, reqs: list[Any]) -> list[str]:
    from workers.engines.base import GenerationParams
    from workers.engines.registry import create_engine

    engine = create_engine(cfg)
    try:
        return [engine.generate(r.body["messages"], GenerationParams.from_body(r.body)).text for r in reqs]
    finally:
        engine.close()


def _ollama_as_before(url: str, model: str, n_ctx: int, reqs: list[Any]) -> list[str]:
    """What the Ollama engine sent before the neutral sampler: no penalties, an empty stop list."""
    import requests

    texts = []
    for r in reqs:
        b = r.body
        options = {"temperature": b["temperature"], "top_p": b.get("top_p") or 1.0, "top_k": b.get("top_k") or 0,
                   "min_p": 0.0, "num_predict": b["max_tokens"], "stop": list(b.get("stop") or []), "num_ctx": n_ctx}
        if b.get("seed") is not None:
            options["seed"] = b["seed"]
        body = {"model": model, "messages": b["messages"], "stream": False, "options": options}
        texts.append(requests.post(f"{url}/api/chat", json=body, timeout=300).json()["message"]["content"])
    return texts


def demo(config: Path, limit_items: int | None) -> list[str]:
    """In-process llama.cpp vs llama-server vs the Ollama test server on the same weights, at T = 0."""
    import tempfile

    from config.model_files import resolve_model_path
    from tests.support.servers.fake_ollama import FakeModel, FakeOllama, FakeOllamaServer, smollm2_responder
    from tests.support.servers.llama_server import llama_server
    from workers.engines.cpu_quirks import apply_from_env

    apply_from_env()
    tmp = Path(tempfile.mkdtemp(prefix="parity-"))
    cfg, reqs = _first_trial(config, limit_items, tmp)
    texts = {"llama_cpp in process": _texts(cfg, reqs)}
    with llama_server(resolve_model_path(cfg.local_model), tmp / "server.log", n_ctx=cfg.n_ctx) as url:
        texts["llama-server (openai_compat)"] = _texts(
            cfg.model_copy(update={"local_engine": "openai_compat", "local_endpoint": url}), reqs)
    name = "smollm2:135m"
    with FakeOllamaServer(FakeOllama(models=[FakeModel(name)], responder=smollm2_responder(cfg.n_ctx))) as srv:
        texts["ollama test server"] = _texts(
            cfg.model_copy(update={"local_engine": "ollama", "local_endpoint": srv.url, "local_model": name}), reqs)
        texts["ollama, options sent before"] = _ollama_as_before(srv.url, name, cfg.n_ctx, reqs)
    ref = texts["llama_cpp in process"]
    lines = [f"{len(reqs)} requests at T = 0 (first trial of {config})"]
    for label, got in texts.items():
        same = sum(_norm(a) == _norm(b) for a, b in zip(ref, got, strict=True))
        lines.append(f"  {label:<30} {same:>3} of {len(ref)} identical to llama_cpp in process")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare the answers of two engines.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    cmp_ = sub.add_parser("compare", help="compare two predictions.csv files")
    cmp_.add_argument("a", type=Path)
    cmp_.add_argument("b", type=Path)
    run = sub.add_parser("run", help="generate with two configs, then compare")
    run.add_argument("--config-a", type=Path, required=True)
    run.add_argument("--config-b", type=Path, required=True)
    run.add_argument("--limit-items", type=int, default=2, help="items per dataset (default 2)")
    run.add_argument("--max-requests", type=int, default=None)
    run.add_argument("--out", type=Path, default=Path("parity"))
    dem = sub.add_parser("demo", help="in-process llama.cpp vs llama-server vs the Ollama test server at T = 0")
    dem.add_argument("--config", type=Path, default=ROOT / "config" / "eval_config.demo.yaml")
    dem.add_argument("--limit-items", type=int, default=None, help="items per dataset (default: the config's)")
    args = parser.parse_args(argv)
    if args.cmd == "demo":
        print("\n".join(demo(args.config, args.limit_items)))
        return 0
    if args.cmd == "compare":
        a, b = args.a, args.b
    else:
        a, b = args.out / "a" / "predictions.csv", args.out / "b" / "predictions.csv"
        for config, path in ((args.config_a, a), (args.config_b, b)):
            n = generate(config, path, args.limit_items, args.max_requests)
            print(f"{config}: {n} predictions -> {path}")
    status, lines = compare(a, b)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
