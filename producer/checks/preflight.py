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
from pathlib import Path

from config.checks import EngineFacts
from config.contract import CONDITIONS
from config.engines import BATCH_BACKENDS, in_process, is_batch
from config.schema import EvalConfig
from config.token_count import count_prompt
from producer.checks.doctor_report import folder_facts
from producer.checks.preflight_data import data_checks
from producer.checks.verdicts import (  # noqa: F401 - the verdicts stay importable from preflight (cmd_doctor, tests)
    FAIL,
    INFO,
    OK,
    WARN,
    Check,
    can_start,
    existing_parent,
    format_checks,
)
from producer.host.console import UserError
from producer.host.env import api_base_notice
from producer.host.queue_paths import ENV_QUEUE_DIR, LEDGER_DB, queue_dir
from producer.inputs.messages import load_prompt_texts, render_messages
from producer.ledger.db import check_writable
from producer.planning.plan import make_plan
from producer.runs.trials import expand_trials
from telemetry.batching import measure_workload, recommend_from_costs
from telemetry.budget import vram_check
from telemetry.nvml import GpuReader
from telemetry.step_costs import read_costs
from workers.engines.registry import preflight_hook

MIN_FREE_DISK_MB = 200
LOW_FREE_DISK_MB = 2048
PACKAGES = ("llama_cpp_python", "requests", "huey", "pydantic", "click", "pandas", "scipy", "nvidia-ml-py", "psutil")


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
    wants_gpu = in_process(cfg) and cfg.n_gpu_layers != 0
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


def longest_request(cfg: EvalConfig, counter: Callable[[list[dict[str, str]]], int] | None) -> tuple[int, str] | None:
    """(prompt tokens + max_new_tokens, description) of the largest request of any trial, or None when
    no items are available yet (datasets not prepared or downloaded)."""
    items = make_plan(cfg, Path("."), None, None).items
    if not items:
        return None
    best: tuple[int, str] | None = None
    for trial in expand_trials(cfg):
        texts = load_prompt_texts(cfg, trial.prompt_set)
        for type_ in sorted({cfg.item_type(i) for i in items}):
            new_tokens = trial.max_new_tokens.open_book if type_ == "open" else trial.max_new_tokens.closed_book
            for condition in CONDITIONS:
                longest = max((render_messages(texts, i, condition, type_) for i in items if cfg.item_type(i) == type_),
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
    """In-process llama.cpp: the P sequences share n_ctx (telemetry.batching), so the shared prefix + P x
    (longest suffix + max_new_tokens) must fit it; and the P this machine's measured step costs recommend
    (``plan --measure``), or how to measure them."""
    costs = read_costs(cfg)
    unmeasured = "step costs not measured on this machine: `python -m producer plan --measure` recommends n_parallel"
    if costs is None and cfg.n_parallel == 1:  # nothing to check or recommend: skip rendering every prompt
        return Check("batching", OK, f"n_parallel 1; {unmeasured}")
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
    if costs is None:
        advice = unmeasured
    else:
        rec, ratio = recommend_from_costs(costs, work.fresh_tokens, work.new_tokens, max(1, work.max_parallel(cfg.n_ctx)))
        advice = (f"recommended n_parallel {rec}" + (f" (predicted {ratio:.2f}x sequential)" if rec > 1 else "")
                  + f" from the {costs.describe()}")
    return Check("batching", OK, f"{detail}; {advice}" if p > 1 else f"n_parallel 1; {advice}")


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
    probe = None if is_batch(cfg.backend) else preflight_hook(cfg.local_engine)
    if probe is not None:
        facts: EngineFacts | None = None
        for model in _trial_models(cfg):
            engine_checks, model_facts = probe(cfg, model)
            checks += engine_checks
            if facts is None or (model_facts.context_limit or 10**9) < (facts.context_limit or 10**9):
                facts = model_facts
            if any(c.failed for c in engine_checks):
                facts = None
                break
        if facts is not None:
            checks.append(context_check(cfg, facts))
            if in_process(cfg):
                checks.append(batching_check(cfg, facts.counter))
    elif not is_batch(cfg.backend):
        checks.append(Check("engine", OK, f"{cfg.local_engine}: no server or model needed"))
    else:
        checks.append(Check("engine", INFO, f"backend {cfg.backend}: checked by its own commands"))

    for backend in BATCH_BACKENDS:  # shown whenever a provider's API base is not the default (a stray .env)
        base = api_base_notice(backend=backend)
        if base is not None:
            status = (FAIL if cfg.backend == backend else WARN) if base[1] else INFO
            checks.append(Check(f"{backend} api base", status, base[1] or base[0]))
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
