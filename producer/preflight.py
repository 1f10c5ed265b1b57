"""Checks run before a long run starts: what will work and what will not, in one screen.

Why: a misconfigured engine must be caught before a 10-hour run starts, not 10 hours in. Each check
is one line with a status; ``fail`` means the run cannot start (``doctor`` exits 1, ``run``/``enqueue``
refuse unless ``--no-preflight``). ``run_preflight(cfg)`` is the single entry point.

Context check: the longest rendered prompt of any trial (counted with the model's own tokenizer where
reachable, else ~4 characters per token) plus that item type's ``max_new_tokens`` must fit the context
the engine will really use (``n_ctx``, capped by the model's trained context length).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.contract import CONDITIONS
from config.llama_cpp_import import import_llama_cpp
from config.model_files import ModelFileError, resolve_model_path
from config.schema import EvalConfig
from config.token_count import count_prompt, gguf_counter, gguf_vocab
from producer.checks import (  # noqa: F401 - the verdicts stay importable from preflight (cmd_doctor, tests)
    FAIL,
    INFO,
    OK,
    WARN,
    Check,
    can_start,
    existing_parent,
    format_checks,
)
from producer.console import UserError
from producer.doctor_report import folder_facts
from producer.env import api_base_notice
from producer.ledger.db import check_writable
from producer.messages import load_prompt_texts, render_messages
from producer.plan import make_plan
from producer.preflight_data import data_checks
from producer.queue_paths import ENV_QUEUE_DIR, LEDGER_DB, queue_dir
from producer.trials import expand_trials
from telemetry.batching import measure_workload
from telemetry.budget import vram_check
from telemetry.gguf import MAGIC, read_gguf_metadata
from telemetry.nvml import GpuReader
from workers.engines.base import EngineError, PermanentEngineError

HTTP_TIMEOUT_S = 5.0
MIN_FREE_DISK_MB = 200
LOW_FREE_DISK_MB = 2048
PACKAGES = ("llama_cpp_python", "requests", "huey", "pydantic", "click", "pandas", "scipy", "nvidia-ml-py", "psutil")


@dataclass
class EngineFacts:
    """What the engine checks learnt, for the context check."""

    context_limit: int | None = None  # tokens the engine will really allow per request
    context_source: str = ""
    counter: Callable[[list[dict[str, str]]], int] | None = None
    counter_name: str = "~4 characters per token"


# -- environment ---------------------------------------------------------------------------------
def versions_check() -> Check:
    parts = []
    for pkg in PACKAGES:
        try:
            parts.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{pkg} -")
    return Check("versions", INFO, f"Python {platform.python_version()} ({sys.platform}); " + ", ".join(parts))


def gpu_check(cfg: EvalConfig) -> Check:
    """NVML's view. No GPU is fatal only for the in-process engine asked to offload layers."""
    with GpuReader() as reader:
        reading = reader.read()
        if reading is not None:
            free = f"{reading.mem_free_mib / 1024:.1f} GiB free of {reading.mem_total_mib / 1024:.1f} GiB" \
                if reading.mem_free_mib is not None else "free VRAM unknown"
            return Check("gpu", OK, f"{reader.device_name}: {free}")
        reason = reader.reason or "unknown reason"
    wants_gpu = cfg.backend == "local" and cfg.local_engine == "llama_cpp" and cfg.n_gpu_layers != 0
    if wants_gpu:
        return Check("gpu", FAIL, f"no NVIDIA GPU ({reason}) but n_gpu_layers is {cfg.n_gpu_layers}: "
                                  "set n_gpu_layers: 0 to run on the CPU, or fix the driver")
    return Check("gpu", INFO, f"no NVIDIA GPU ({reason})")


def disk_check(cfg: EvalConfig) -> Check:
    where = existing_parent(Path(cfg.paths.experiments_dir))
    free_mb = shutil.disk_usage(where).free / 1024 / 1024
    detail = f"{free_mb / 1024:.1f} GiB free for results at {where}"
    if free_mb < MIN_FREE_DISK_MB:
        return Check("disk", FAIL, detail + f" (need at least {MIN_FREE_DISK_MB} MB)")
    return Check("disk", WARN if free_mb < LOW_FREE_DISK_MB else OK, detail)


def queue_check() -> Check:
    """The queue folder accepts files and its SQLite ledger (if any) accepts a write transaction."""
    try:
        folder = queue_dir()
        fd, tmp = tempfile.mkstemp(prefix=".doctor-", dir=folder)
        os.close(fd)
        Path(tmp).unlink()
    except UserError as exc:  # QueueError: the folder is a file, cannot be created...
        return Check("queue", FAIL, str(exc))
    except OSError as exc:
        return Check("queue", FAIL, f"queue folder not writable: {exc.strerror or exc}")
    place = queue_place_check(folder)
    if place is not None:
        return place
    ledger = folder / LEDGER_DB
    if ledger.exists():
        try:
            check_writable(ledger)
        except sqlite3.Error as exc:
            return Check("queue", FAIL, f"{ledger} not writable: {exc}")
    return Check("queue", OK, f"{folder} writable")


def queue_place_check(folder: Path) -> Check | None:
    """SQLite's WAL journal needs a local disk: a network share can corrupt the queue, and a synced
    folder (OneDrive) locks and uploads the database files while workers write them."""
    facts = folder_facts(folder)
    fix = f"set {ENV_QUEUE_DIR} to a folder on a local disk, e.g. C:\\excellence-queue (docs/windows.md)"
    if facts["network"]:
        return Check("queue", FAIL, f"{folder} is on a network drive ({facts['filesystem'] or facts['drive_type']}): "
                                    f"SQLite's WAL journal needs a local disk: {fix}")
    if facts["onedrive"]:
        return Check("queue", WARN, f"{folder} is inside OneDrive: syncing locks and uploads the queue's SQLite "
                                    f"files while workers write them: {fix}")
    return None


# -- engines -------------------------------------------------------------------------------------
def _trial_models(cfg: EvalConfig) -> list[str]:
    return list(dict.fromkeys(t.model for t in expand_trials(cfg)))


def _ollama_checks(cfg: EvalConfig, model: str) -> tuple[list[Check], EngineFacts]:
    from workers.engines.http_common import pull_hint  # lazy: only for the configured engine
    from workers.engines.ollama import OllamaEngine  # lazy: only for the configured engine

    facts = EngineFacts()
    engine = OllamaEngine(cfg, model)
    try:
        try:
            tags = engine.tags(timeout_s=HTTP_TIMEOUT_S)
        except EngineError as exc:
            return [Check("engine", FAIL, str(exc))], facts
        checks = [Check("engine", OK, f"Ollama at {engine.base_url} answers ({len(tags)} model(s) pulled)")]
        names = {str(t.get("name")) for t in tags} | {str(t.get("model")) for t in tags}
        if model not in names and f"{model}:latest" not in names:
            checks.append(Check("model", FAIL, pull_hint("Ollama", model)))
            return checks, facts
        checks.append(Check("model", OK, f"{model} is pulled"))
        try:
            info = engine.show(timeout_s=HTTP_TIMEOUT_S * 3).get("model_info") or {}
        except EngineError as exc:
            checks.append(Check("context", WARN, f"cannot read model facts from /api/show: {exc}"))
            return checks, facts
        trained = _context_from_info(info)
        facts.context_limit = min(cfg.n_ctx, trained) if trained else cfg.n_ctx
        facts.context_source = f"num_ctx {cfg.n_ctx}" + (f", model trained for {trained}" if trained else "")
        if trained and cfg.n_ctx > trained:
            checks.append(Check("n_ctx", WARN, f"n_ctx {cfg.n_ctx} exceeds {model}'s trained context {trained}"))
        facts.counter = engine.prompt_counter()
        facts.counter_name = "Ollama /api/embed, else ~4 characters per token"
        return checks, facts
    finally:
        engine.close()


def _context_from_info(info: dict[str, Any]) -> int | None:
    arch = info.get("general.architecture")
    value = info.get(f"{arch}.context_length") if arch else None
    if value is None:
        value = next((v for k, v in info.items() if k.endswith(".context_length")), None)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _openai_checks(cfg: EvalConfig, model: str) -> tuple[list[Check], EngineFacts]:
    from workers.engines.openai_compat import OpenAICompatEngine  # lazy: only for the configured engine

    facts = EngineFacts()
    engine = OpenAICompatEngine(cfg, model)
    try:
        try:
            body = engine._call("GET", "/v1/models", timeout_s=HTTP_TIMEOUT_S)
        except EngineError as exc:
            return [Check("engine", FAIL, str(exc))], facts
        data = [m for m in body.get("data") or [] if isinstance(m, dict)]
        ids = [str(m.get("id")) for m in data]
        checks = [Check("engine", OK, f"server at {engine.base_url} answers (models: {', '.join(ids) or 'none listed'})")]
        if ids and model not in ids:
            checks.append(Check("model", WARN, f"{model} is not listed by /v1/models (servers with one model "
                                               "usually ignore the name; LM Studio and vLLM do not)"))
        else:
            checks.append(Check("model", OK, f"{model} is served"))
        limit = next((int(m["max_model_len"]) for m in data if m.get("id") == model and m.get("max_model_len")), None)
        if limit is None:
            try:  # llama-server: GET /props -> default_generation_settings.n_ctx (per slot)
                props = engine._call("GET", "/props", timeout_s=HTTP_TIMEOUT_S)
                limit = (props.get("default_generation_settings") or {}).get("n_ctx") or props.get("n_ctx")
            except EngineError:
                limit = None
        if limit:
            facts.context_limit = int(limit)
            facts.context_source = "the server's context per slot"
        return checks, facts
    finally:
        engine.close()


def llama_cpp_engine_check() -> tuple[Check, Any]:
    """(check, the llama_cpp module or None). Any failure to import or load the library is FAIL: the
    worker would stop the run with the same reason (``import_llama_cpp`` is the one place that says it)."""
    from workers.engines.llama_cpp_engine import gpu_offload_supported  # lazy: only for the configured engine

    try:
        llama_cpp = import_llama_cpp()
    except PermanentEngineError as exc:
        return Check("engine", FAIL, str(exc)), None
    build = "GPU offload" if gpu_offload_supported(llama_cpp) else "CPU-only build"
    return Check("engine", OK, f"llama-cpp-python {getattr(llama_cpp, '__version__', '?')} ({build})"), llama_cpp


def _llama_cpp_checks(cfg: EvalConfig, model: str) -> tuple[list[Check], EngineFacts]:
    from workers.engines.llama_cpp_engine import gpu_offload_supported  # lazy: only for the configured engine

    facts = EngineFacts(context_limit=cfg.n_ctx, context_source=f"n_ctx {cfg.n_ctx}")
    engine, llama_cpp = llama_cpp_engine_check()
    checks = [engine]
    try:
        path = resolve_model_path(model)
    except ModelFileError as exc:
        return checks + [Check("model", FAIL, str(exc))], facts
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        return checks + [Check("model", FAIL, f"{path} is not readable: {exc.strerror or exc}")], facts
    if magic != MAGIC:
        return checks + [Check("model", FAIL, f"{path} is not a GGUF file")], facts
    checks.append(Check("model", OK, f"{path} ({path.stat().st_size / 1024 / 1024:.0f} MiB)"))
    if llama_cpp is None:
        return checks, facts
    if cfg.n_gpu_layers != 0 and not gpu_offload_supported(llama_cpp):
        checks.append(Check("offload", WARN, "this llama-cpp-python build cannot offload to a GPU: "
                                             "the model will run on the CPU (see docs/windows.md for a CUDA build)"))
    try:
        meta = read_gguf_metadata(path)
        arch = meta.get("general.architecture")
        trained = int(meta[f"{arch}.context_length"]) if arch and meta.get(f"{arch}.context_length") else None
        if trained and cfg.n_ctx > trained:
            checks.append(Check("n_ctx", WARN, f"n_ctx {cfg.n_ctx} exceeds the model's trained context {trained}"))
            facts.context_limit = trained
            facts.context_source += f", model trained for {trained}"
        gguf_vocab(path)  # load the tokenizer now: one that cannot load is a warning here, not an estimate later
        facts.counter = gguf_counter(path)
        facts.counter_name = "the GGUF's tokenizer and chat template"
    except Exception as exc:  # noqa: BLE001 - metadata is advisory
        checks.append(Check("context", WARN, f"cannot read GGUF metadata: {' '.join(str(exc).split())}"))
    return checks, facts


ENGINE_CHECKS = {"ollama": _ollama_checks, "openai_compat": _openai_checks, "llama_cpp": _llama_cpp_checks}


def longest_request(cfg: EvalConfig, counter: Callable[[list[dict[str, str]]], int] | None) -> tuple[int, str] | None:
    """(prompt tokens + max_new_tokens, description) of the largest request of any trial, or None when
    no items are available yet (datasets not prepared or downloaded)."""
    items = make_plan(cfg, Path("."), None, None).items
    if not items:
        return None
    best: tuple[int, str] | None = None
    for trial in expand_trials(cfg):
        texts = load_prompt_texts(cfg, trial.prompt_set)
        for type_ in sorted({cfg.dataset_type(i["dataset"]) for i in items}):
            new_tokens = trial.max_new_tokens.open_book if type_ == "open" else trial.max_new_tokens.closed_book
            for condition in CONDITIONS:
                longest = max((render_messages(texts, i, condition, type_) for i in items if cfg.dataset_type(i["dataset"]) == type_),
                              key=lambda msgs: sum(len(m["content"]) for m in msgs))
                need = count_prompt(longest, counter) + new_tokens
                if best is None or need > best[0]:
                    best = (need, f"trial {trial.slug}, {condition}, {type_}-book: prompt + {new_tokens} new tokens")
    return best


def context_check(cfg: EvalConfig, facts: EngineFacts) -> Check:
    try:
        need = longest_request(cfg, facts.counter)
    except Exception as exc:  # noqa: BLE001 - a dataset problem is `prepare`'s to report
        return Check("context", WARN, f"cannot render the prompts: {' '.join(str(exc).split())}")
    if need is None:
        return Check("context", WARN, "no items available yet (run `python -m producer prepare`): context not checked")
    tokens, where = need
    if facts.context_limit is None:
        return Check("context", WARN, f"longest request needs ~{tokens} tokens ({where}); the server does not say its context length")
    detail = (f"longest request needs ~{tokens} of {facts.context_limit} tokens ({where}; {facts.context_source}; "
              f"counted with {facts.counter_name})")
    if tokens > facts.context_limit:
        fix = ("raise n_ctx or lower max_new_tokens" if facts.context_limit >= cfg.n_ctx
               else "the model allows no more: shorten the prompts, lower max_new_tokens or use a longer-context model")
        return Check("context", FAIL, f"context too small: {detail}: {fix}")
    return Check("context", OK, detail)


def batching_check(cfg: EvalConfig, counter: Callable[[list[dict[str, str]]], int] | None) -> Check:
    """In-process n_parallel P > 1: the P sequences share n_ctx (telemetry.batching), so the shared prefix
    + P x (longest suffix + max_new_tokens) must fit it."""
    try:
        work = measure_workload(cfg, make_plan(cfg, Path("."), None, None).items, counter)
    except Exception as exc:  # noqa: BLE001 - a dataset problem is `prepare`'s to report
        return Check("batching", WARN, f"cannot render the prompts: {' '.join(str(exc).split())}")
    p = cfg.n_parallel
    if work is None:
        return Check("batching", WARN, f"n_parallel {p}: no items available yet, context need not checked")
    need = work.context_need(p)
    detail = (f"n_parallel {p}: shared prefix {work.prefix_tokens} + {p} x (longest suffix + max_new_tokens "
              f"{work.longest_tail}) = {need} of n_ctx {cfg.n_ctx} tokens")
    if need > cfg.n_ctx:
        fit = work.max_parallel(cfg.n_ctx)
        fix = f"raise n_ctx to {need}" + (f" or set n_parallel {fit}" if fit >= 1 else "")
        return Check("batching", WARN, f"context too small for {p} sequences: {detail} ({work.where}): {fix}")
    return Check("batching", OK, detail)


def vram_budget_check(cfg: EvalConfig) -> Check:
    """The VRAM budget (telemetry.budget.vram_check): one line, never fatal."""
    try:
        status, message = vram_check(cfg)
    except Exception as exc:  # noqa: BLE001 - advisory
        return Check("vram", WARN, f"VRAM budget unavailable: {' '.join(str(exc).split())}")
    return Check("vram", {"ok": OK, "warn": WARN}.get(status, INFO), message)


def run_preflight(cfg: EvalConfig, check_data: bool = True) -> list[Check]:
    """Every check, in screen order. ``can_start(checks)`` says whether a run may begin. ``cfg`` carries
    any ``--data`` overrides (``apply_data_overrides``); ``check_data=False`` skips the data sources."""
    checks = [versions_check(), *(data_checks(cfg) if check_data else [])]
    if cfg.backend == "local" and cfg.local_engine in ENGINE_CHECKS:
        facts: EngineFacts | None = None
        for model in _trial_models(cfg):
            engine_checks, model_facts = ENGINE_CHECKS[cfg.local_engine](cfg, model)
            checks += engine_checks
            if facts is None or (model_facts.context_limit or 10**9) < (facts.context_limit or 10**9):
                facts = model_facts
            if any(c.failed for c in engine_checks):
                facts = None
                break
        if facts is not None:
            checks.append(context_check(cfg, facts))
            if cfg.local_engine == "llama_cpp" and cfg.n_parallel > 1:
                checks.append(batching_check(cfg, facts.counter))
    elif cfg.backend == "local":
        checks.append(Check("engine", OK, f"{cfg.local_engine}: no server or model needed"))
    else:
        checks.append(Check("engine", INFO, f"backend {cfg.backend}: checked by its own commands"))

    base = api_base_notice()  # shown whenever FIREWORKS_API_BASE is not the default (a stray .env)
    if base is not None:
        status = (FAIL if cfg.backend == "fireworks" else WARN) if base[1] else INFO
        checks.append(Check("fireworks api base", status, base[1] or base[0]))
    checks.append(gpu_check(cfg))
    checks.append(vram_budget_check(cfg))
    checks.append(disk_check(cfg))
    checks.append(queue_check())
    return checks


def ensure_ready(cfg: EvalConfig, check_data: bool = True) -> list[Check]:
    """For ``run``/``enqueue``: raise a one-line ``UserError`` (exit 1) naming the failed checks."""
    checks = run_preflight(cfg, check_data)
    failed = [c for c in checks if c.failed]
    if failed:
        summary = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        raise UserError(f"preflight failed: {summary} (see `python -m producer doctor`; skip with --no-preflight)", 1)
    return checks
