"""Run manifests (CONTRACT section 9): config fingerprint, effective config, run_state, trial_manifest.

Why: a resumed or compared run must prove which settings and prompts produced it. Every write is
atomic (config.atomic) and read-modify-write updates hold a small lock file, so the producer and
worker processes can update the same manifest without losing each other's changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.atomic import write_text_atomic
from config.contract import CONDITIONS, temp_label
from config.engines import (
    BATCH_BACKENDS,
    LOCAL_DRY_RUN_ENGINE,
    batch_dry_run_engine,
    engine_spec,
    in_process,
    is_batch,
    run_engine,
)
from config.sampler import effective_sampler
from config.schema import EvalConfig
from config.textfile import read_user_bytes, read_user_text
from producer.host.env import user_env_value
from producer.runs.layout import RunLayout
from producer.runs.run_records import R, RunState, TrialManifest, read_record, write_record
from producer.runs.trials import Trial

PHASES = ("prepare", "build", "submit", "poll", "parse", "score", "stats", "costs", "report")
STATUSES = ("pending", "running", "done", "failed", "skipped")
LOCAL_STAGES = ("generated", "parsed", "scored", "stats", "costs", "report")
FIREWORKS_STAGES = ("downloaded", "parsed", "scored", "stats", "costs", "report")
LOCK_STALE_S = 30.0


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _prompt_files(cfg: EvalConfig) -> list[Path]:
    paths = [cfg.task_instructions.open_book, cfg.task_instructions.closed_book]
    for name in sorted(cfg.prompt_sets):
        paths += [cfg.prompt_sets[name].control, cfg.prompt_sets[name].treatment]
    return paths


def config_fingerprint(cfg: EvalConfig) -> str:
    """sha256 of the canonical config JSON plus the contents of every prompt and instruction file."""
    h = hashlib.sha256()
    h.update(json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode("utf-8"))
    for path in _prompt_files(cfg):
        h.update(b"\0" + Path(path).as_posix().encode("utf-8") + b"\0")
        try:
            h.update(read_user_bytes(path))  # a BOM does not change the fingerprint
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()


DRY_RUN_NOTE = "DRY RUN: synthetic answers from the dry_run engine, no model was called"


def write_effective_config(layout: RunLayout, cfg: EvalConfig, dry_run: bool = False) -> Path:
    """``effective_config.yaml``: the config after defaults and CLI overrides, loadable again.

    ``--dry-run`` is such an override: a local dry run records ``local_engine: dry_run`` (loading the
    file again repeats the dry run) and every dry run says so in the header."""
    import yaml

    data = cfg.model_dump(mode="json")
    if dry_run and not is_batch(cfg.backend):
        data["local_engine"] = LOCAL_DRY_RUN_ENGINE
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    header = f"# effective configuration of run {layout.run_id}\n# config_fingerprint: {config_fingerprint(cfg)}\n"
    if dry_run:
        header += f"# {DRY_RUN_NOTE}\n"
    return write_text_atomic(layout.effective_config, header + body)


# --- locking and JSON read-modify-write ---------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path, timeout_s: float = 10.0) -> Iterator[None]:
    """Exclusive lock via an O_EXCL lock file next to ``path`` (portable; stale locks are broken)."""
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.close(fd)
            break
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime > LOCK_STALE_S:
                    lock.unlink(missing_ok=True)
                    continue
            except OSError:
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not lock {path} (remove {lock} if no run is active)") from None
            time.sleep(0.02)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


def _update_record(path: Path, model: type[R], change: Callable[[R], None]) -> R:
    """Read-modify-write of a record file under its lock; ``updated_at`` stamped."""
    with _locked(Path(path)):
        record = read_record(path, model)
        change(record)
        record.updated_at = now_iso()
        write_record(path, record)
    return record


# --- run_state.json ---------------------------------------------------------------------------


def init_run_state(layout: RunLayout, cfg: EvalConfig, config_path: Path | str | None = None,
                   dry_run: bool = False) -> RunState:
    """Create ``run_state.json`` (or refresh its fingerprint), keeping phases already recorded."""

    def change(state: RunState) -> None:
        fresh = state.model_fields_set
        state.set(schema_version=state.schema_version, run_id=layout.run_id, dry_run=bool(dry_run),
                  created_at=state.created_at if "created_at" in fresh else now_iso(),
                  config_fingerprint=config_fingerprint(cfg))
        if config_path is not None:
            state.config_path = Path(config_path).as_posix()
        state.set(stop_requested=state.stop_requested, phase_order=list(PHASES))
        for phase in PHASES:
            if phase not in state.phases:
                state.phase(phase).set(status="pending", updated_at=None)

    return _update_record(layout.run_state, RunState, change)


def read_run_state(layout: RunLayout) -> RunState:
    """The one reader of ``run_state.json`` (an empty record before the run is enqueued)."""
    return read_record(layout.run_state, RunState)


def update_phase(layout: RunLayout, phase: str, status: str, **extra: Any) -> RunState:
    """Record a phase transition with timestamps (``started_at`` on running, ``finished_at`` on end)."""
    if status not in STATUSES:
        raise ValueError(f"phase status {status!r} not in {STATUSES}")

    def change(state: RunState) -> None:
        entry = state.phase(phase)
        stamp = now_iso()
        entry.set(status=status, updated_at=stamp)
        if status == "running":
            entry.set(started_at=stamp)
            entry.drop("finished_at")
        elif status in ("done", "failed", "skipped"):
            entry.set(finished_at=stamp)
        entry.set(**extra)

    return _update_record(layout.run_state, RunState, change)


# run phase <- the trial stage it summarises (every trial's trial_manifest.json)
PHASE_FROM_STAGE = {"parse": "parsed", "score": "scored", "stats": "stats", "costs": "costs", "report": "report"}
BATCH_ONLY_PHASES = ("submit", "poll")


def _combined(statuses: list[str]) -> str | None:
    """One run phase from its trials' stage statuses; None while no trial has started it."""
    if "failed" in statuses:
        return "failed"
    if statuses and all(s in ("done", "skipped") for s in statuses):
        return "done" if "done" in statuses else "skipped"
    if any(s in ("running", "done", "skipped") for s in statuses):
        return "running"
    return None


def record_run_phases(layout: RunLayout, trials: Iterable[str], batch: bool = False,
                      failed: tuple[str, str] | None = None) -> RunState:
    """Mark in run_state.json every phase the run went through, from its trials' stage_status.

    Why: run_state.json is what a reader of the run folder sees; a finished run must not show seven of
    nine phases "pending". A local run has no batch job: ``submit`` and ``poll`` are ``skipped``.
    ``failed`` = (phase, error) records a phase that could not complete (an export that could not write).
    """
    stages = {t: read_trial_manifest(layout.trial_manifest(t)).stage_status for t in trials}
    wanted: dict[str, dict[str, Any]] = {}
    for phase, stage in PHASE_FROM_STAGE.items():
        status = _combined([stages[t][stage].status if stage in stages[t] else "pending" for t in stages])
        if status is not None:
            wanted[phase] = {"status": status}
    if not batch:
        for phase in BATCH_ONLY_PHASES:
            wanted[phase] = {"status": "skipped", "note": "local engine: requests ran in the worker pool, no batch job"}
    if failed is not None:
        wanted[failed[0]] = {"status": "failed", "error": failed[1]}

    def change(state: RunState) -> None:
        stamp = now_iso()
        for phase, want in wanted.items():
            entry = state.phase(phase)
            if "status" in entry.model_fields_set and entry.status == want["status"]:
                continue
            if want["status"] != "failed":
                entry.drop("error")
            entry.set(**want, updated_at=stamp)
            if want["status"] == "running":
                if entry.extra("started_at") is None:
                    entry.set(started_at=stamp)
            else:
                entry.set(finished_at=stamp)

    return _update_record(layout.run_state, RunState, change)


def set_stop_flag(layout: RunLayout, stop: bool = True) -> RunState:
    def change(state: RunState) -> None:
        state.set(stop_requested=bool(stop), stop_updated_at=now_iso())

    return _update_record(layout.run_state, RunState, change)


def stop_requested(layout: RunLayout) -> bool:
    return read_run_state(layout).stop_requested


# --- trial_manifest.json ----------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """Rough token count (~4 characters per token for English); used when no tokenizer is loaded."""
    return max(1, round(len(text) / 4)) if text else 0


def _prompt_entry(path: Path, counter: Callable[[str], int] | None = None) -> dict[str, Any]:
    text = read_user_text(path).strip()  # the text sent: without a BOM (config.textfile)
    return {
        "path": Path(path).as_posix(),
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "chars": len(text),
        "tokens": counter(text) if counter is not None else estimate_tokens(text),
        "tokens_estimated": counter is None,
    }


def request_counts(cfg: EvalConfig, trial: Trial, items: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Requests per (temp, condition), split by type: what the trial is expected to produce."""
    by_type = {"open": 0, "closed": 0}
    for item in items:
        by_type[cfg.item_type(item)] += 1
    counts: dict[str, dict[str, Any]] = {}
    for temp in trial.temps:
        k = cfg.samples_for(temp)
        per_cond = {"items": sum(by_type.values()), "open": by_type["open"] * k, "closed": by_type["closed"] * k}
        per_cond["requests"] = per_cond["open"] + per_cond["closed"]
        counts[temp_label(temp)] = {cond: dict(per_cond) for cond in CONDITIONS}
    return counts


def engine_settings(cfg: EvalConfig, model: str, dry_run: bool = False, in_flight: int | None = None) -> dict[str, Any]:
    """Backend and engine settings a reader needs to judge the run (no secrets). ``in_flight``: the
    requests in flight the run uses (``batching.max_concurrent_requests``), else the static figure."""
    if is_batch(cfg.backend):  # the provider's settings sit under the config field named like the backend
        out = {"backend": cfg.backend, "model": model, cfg.backend: getattr(cfg, cfg.backend).model_dump(mode="json")}
        spec = BATCH_BACKENDS[cfg.backend]
        if not spec.takes_seed:  # trial.seed is the config's; this service never receives it
            out["seed"] = f"not sent: the {spec.label} takes no seed, so answers at temperature > 0 cannot be repeated"
        return out | ({"engine": batch_dry_run_engine(cfg.backend)} if dry_run else {})
    return {
        "backend": cfg.backend,
        "engine": run_engine(cfg, dry_run),
        "model": model,
        "endpoint": cfg.local_endpoint,
        "n_ctx": cfg.n_ctx,
        "n_gpu_layers": cfg.n_gpu_layers,
        "n_threads": cfg.n_threads,
        "kv_cache_type": cfg.kv_cache_type,
        "max_concurrent_requests": in_flight or cfg.static_in_flight(),
        "keep_alive": cfg.keep_alive,
        "sampler": effective_sampler(cfg),
    }


SLOTS_PROBE_TIMEOUT_S = 3.0


def _server_slots(endpoint: str | None, timeout_s: float = SLOTS_PROBE_TIMEOUT_S) -> int | None:
    """llama-server's parallel slots: ``GET /props`` -> ``total_slots`` (its documented API); None when
    the server is down, hung or does not say (llama-cpp-python's server, vLLM, LM Studio)."""
    if not endpoint:
        return None
    import requests

    base = endpoint.rstrip("/")
    base = base[:-3] if base.endswith("/v1") else base
    try:
        resp = requests.get(f"{base}/props", timeout=timeout_s)
        slots = resp.json().get("total_slots") if resp.status_code == 200 else None
        return int(slots) if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else None
    except (requests.RequestException, ValueError, AttributeError):
        return None


def engine_batching(cfg: EvalConfig, dry_run: bool = False) -> dict[str, Any]:
    """How the engine batches requests, stated once per trial: control and treatment always run with
    the same setting (one config per run; a resume with another config is refused) and the same rules
    (each condition its own block, the same order of items). ``server_parallel``: the server's own
    slot count where it can be learnt (Ollama: OLLAMA_NUM_PARALLEL as this process sees it; llama-server:
    ``/props`` ``total_slots``)."""
    batch = is_batch(cfg.backend)
    engine = cfg.backend if batch else run_engine(cfg, dry_run)
    out: dict[str, Any] = {"engine": engine, "n_parallel": None, "max_concurrent_requests": None,
                           "max_concurrent_requests_source": None,
                           "server_parallel": None, "server_parallel_source": None,
                           "same_for_both_conditions": True}
    if batch:
        return out | {"mode": "server-side", "description": BATCH_BACKENDS[cfg.backend].batching}
    spec = engine_spec(engine)
    if not spec.has_model:
        return out | {"mode": "none", "description": "dry run: no model, no batching"}
    if spec.in_process:
        p = cfg.n_parallel
        text = (f"in-process llama.cpp, {p} sequences decoded together (one context, unified KV cache, "
                "continuous batching)" if p > 1 else "in-process llama.cpp, one sequence at a time")
        return out | {"n_parallel": p, "mode": "batched" if p > 1 else "sequential", "description": text}
    if spec.server_slots_env:
        var = spec.server_slots_env
        env, user = os.environ.get(var), user_env_value(var)
        raw = env or user
        if raw and raw.strip().isdigit():
            out["server_parallel"] = int(raw.strip())
            out["server_parallel_source"] = f"{var} " + ("(environment)" if env else "(user setting)")
        server = f"{var} {out['server_parallel'] if raw else spec.server_slots_unset}"
    else:
        out["server_parallel"] = _server_slots(cfg.local_endpoint, min(SLOTS_PROBE_TIMEOUT_S, cfg.request_timeout_s))
        out["server_parallel_source"] = "GET /props total_slots" if out["server_parallel"] else None
        server = (f"server slots {out['server_parallel']}" if out["server_parallel"]
                  else "server slots not reported by the server")
    # the same rule the engine applies when it starts (config.schema.EvalConfig.in_flight_for): auto
    # matches llama-server's /props slots; Ollama's API does not report its slots, so auto is 1 there
    reported = None if spec.server_slots_env else out["server_parallel"]
    in_flight = out["max_concurrent_requests"] = cfg.in_flight_for(reported)
    out["max_concurrent_requests_source"] = (
        "config" if cfg.max_concurrent_requests is not None
        else "auto: GET /props total_slots" if reported else "auto: 1 (the server does not report its slots)")
    return out | {"mode": "server", "description": f"{engine} server: up to {in_flight} "
                  f"concurrent requests, {server}; the server batches them"}


def build_trial_manifest(
    cfg: EvalConfig, trial: Trial, run_id: str, items: Iterable[dict[str, Any]], dry_run: bool = False
) -> TrialManifest:
    from config.token_count import prompt_text_counter  # lazy: keeps the task modules light to import

    stages = FIREWORKS_STAGES if is_batch(cfg.backend) else LOCAL_STAGES
    on_llama_cpp = in_process(cfg)  # the GGUF's own tokenizer counts the prompt tokens
    counter, how_counted = prompt_text_counter(cfg.tokenizer, trial.model if on_llama_cpp else None)
    batching = engine_batching(cfg, dry_run)
    stamp = now_iso()
    return TrialManifest.model_validate({
        "schema_version": 2,
        "run_id": run_id,
        "created_at": stamp,
        "updated_at": stamp,
        "config_fingerprint": config_fingerprint(cfg),
        "dry_run": bool(dry_run),
        "trial": {
            "slug": trial.slug,
            "model": trial.model,
            "prompt_set": trial.prompt_set,
            "temps": [temp_label(t) for t in trial.temps],
            "top_p": trial.top_p,
            "top_k": trial.top_k,
            "max_new_tokens": trial.max_new_tokens.model_dump(mode="json"),
            "stop": list(cfg.stop),
            "seed": cfg.seed,
            **({"aa_of": trial.aa_of} if trial.aa_of else {}),
        },
        "prompts": {
            "prompt_set": trial.prompt_set,
            "token_counts": how_counted,
            "control": _prompt_entry(trial.prompt_file(cfg, "control"), counter),
            "treatment": _prompt_entry(trial.prompt_file(cfg, "treatment"), counter),
            "open_book_instruction": _prompt_entry(cfg.task_instructions.open_book, counter),
            "closed_book_instruction": _prompt_entry(cfg.task_instructions.closed_book, counter),
        },
        "temps": [temp_label(t) for t in trial.temps],
        "samples_per_item": {temp_label(t): cfg.samples_for(t) for t in trial.temps},
        "engine": engine_settings(cfg, trial.model, dry_run, batching["max_concurrent_requests"]),
        "batching": batching,
        "counts": request_counts(cfg, trial, items),
        "stage_status": {s: {"status": "pending", "updated_at": None, "artifacts": []} for s in stages},
    })


def read_trial_manifest(path: Path) -> TrialManifest:
    """The one reader of ``trial_manifest.json`` (an empty record when the trial has none yet)."""
    return read_record(path, TrialManifest)


def write_trial_manifest(
    layout: RunLayout, cfg: EvalConfig, trial: Trial, items: Iterable[dict[str, Any]], dry_run: bool = False
) -> Path:
    """Write ``<slug>/results/trial_manifest.json``, keeping stage_status and created_at if it exists."""
    path = layout.trial_manifest(trial.slug)
    fresh = build_trial_manifest(cfg, trial, layout.run_id, items, dry_run)
    with _locked(path):
        old = read_trial_manifest(path)
        if old.model_fields_set or old.model_extra:
            if "created_at" in old.model_fields_set:
                fresh.created_at = old.created_at
            fresh.stage_status.update(old.stage_status)
            for key in [*old.model_fields_set - fresh.model_fields_set, *(old.model_extra or {})]:
                if key not in fresh.model_fields_set and key not in (fresh.model_extra or {}):
                    setattr(fresh, key, getattr(old, key))  # fields other modules added stay
        write_record(path, fresh)
    return path


def update_stage(
    path: Path | str, stage: str, status: str, artifacts: Iterable[Path | str] | None = None, **extra: Any
) -> TrialManifest:
    """Set ``stage_status[stage]`` = {status, updated_at, artifacts} in a trial manifest (atomic, locked)."""
    if status not in STATUSES:
        raise ValueError(f"stage status {status!r} not in {STATUSES}")

    def change(data: TrialManifest) -> None:
        entry = data.stage(stage)
        entry.set(status=status, updated_at=now_iso())
        if artifacts is not None:
            entry.artifacts = [Path(a).as_posix() for a in artifacts]
        elif "artifacts" not in entry.model_fields_set:
            entry.artifacts = []
        entry.set(**extra)

    return _update_record(Path(path), TrialManifest, change)


def update_trial_manifest(path: Path | str, change: Callable[[TrialManifest], None]) -> TrialManifest:
    """Any other change to a trial manifest (locked read-modify-write, ``updated_at`` stamped)."""
    return _update_record(Path(path), TrialManifest, change)


def mark_usage_estimated(path: Path | str, estimated: bool = True) -> TrialManifest:
    """Token columns of predictions.csv came from estimates, not engine usage (CONTRACT section 4)."""

    def change(data: TrialManifest) -> None:
        data.usage_estimated = bool(estimated)

    return update_trial_manifest(path, change)


def write_imported_records(layout: RunLayout, trial_slug: str, state: dict[str, Any], manifest: dict[str, Any]) -> None:
    """An imported run's ``run_state.json`` and trial manifest (``producer import``, docs/contract.md section 9
    "Imported runs"): written once into a folder no other process knows yet, never updated."""
    write_record(layout.trial_manifest(trial_slug), TrialManifest.model_validate(manifest))
    write_record(layout.run_state, RunState.model_validate(state))
