"""Register a run in the ledger and queue its work: idempotent, crash-safe, one transaction.

Why: a producer killed mid-enqueue must leave either nothing or a complete run, and running enqueue
again must add only what is missing. One flow for both backends: requests are built by
``iter_trial_requests`` (the one builder), then the backend step cuts them into chunks of consecutive
requests of one trial, temperature and condition (local) or into Fireworks parts
(``producer.inputs.fireworks_plan``); the same ledger and queue carry both, so export, scoring and ``status``
are shared. The messages themselves are sent by reconcile (``workers.reconcile.reconcile_run``), which
the command line passes in: planning never imports the workers' room (.importlinter).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.atomic import copy_file_atomic
from config.contract import CONDITIONS
from config.engines import batch_backend_of, is_batch, is_dry_run_engine, run_engine
from config.errors import ConfigError
from config.lookup import apply_data_overrides
from config.model_files import KNOWN_MODELS
from config.schema import EvalConfig
from producer.host.console import UserError
from producer.host.env import BatchServiceError, check_backend_ready
from producer.inputs.fireworks_plan import plan_run, register_plan, retry_failed_parts
from producer.inputs.messages import load_prompt_texts
from producer.inputs.prepare import check_output_dir, ensure_prepared
from producer.inputs.requests_build import iter_trial_requests
from producer.inputs.sweep_share import share_key, write_manifest_notes
from producer.ledger import connect
from producer.ledger.locate import find_run_queue
from producer.ledger.queries import get_run, latest_run, request_count, trial_names
from producer.ledger.run_record import run_config, set_run_stop
from producer.ledger.sweep import register_shared
from producer.ledger.writes import NewRequest, register_run, reopen_failed_analyses, retry_failed
from producer.planning.plan import requests_per_item, size_refusal
from producer.runs import manifests
from producer.runs.layout import RunFolder, RunLayout
from producer.runs.manifests import config_fingerprint
from producer.runs.trials import expand_trials

CHUNK_SIZE = 16  # requests per inference task: small enough to lose little on a crash
# Sends a message for every open chunk or part of a run and returns how many inference messages it
# sent: workers.reconcile.reconcile_run, passed in by the command line.
Reconcile = Callable[[str], int]


@dataclass
class EnqueueSummary:
    run_id: str
    created: bool
    total: int
    registered: int
    enqueued: int
    run_dir: Path
    trials: list[str] = field(default_factory=list)
    engine: str = ""


def run_fingerprint(cfg: EvalConfig, limit_items: int | None, engine: str) -> str:
    text = json.dumps([config_fingerprint(cfg), limit_items, engine])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_run_id(fingerprint: str) -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + fingerprint[:6]


def absolute_snapshot(cfg: EvalConfig) -> dict[str, Any]:
    """The config as JSON with every file path absolute: workers may run from another folder."""
    data = cfg.model_dump(mode="json")
    for key, value in data["paths"].items():
        data["paths"][key] = str(Path(value).resolve())
    for pset in data["prompt_sets"].values():
        for cond in CONDITIONS:
            pset[cond] = str(Path(pset[cond]).resolve())
    for kind in ("open_book", "closed_book"):
        data["task_instructions"][kind] = str(Path(data["task_instructions"][kind]).resolve())
    model = data.get("local_model")
    if model and model.lower() not in KNOWN_MODELS and Path(model).expanduser().is_file():
        data["local_model"] = str(Path(model).expanduser().resolve())
    for name, spec in data["data"].items():  # a dataset file path (not sample/hub/URL)
        if spec not in ("sample", "hub") and not str(spec).startswith(("http://", "https://")):
            data["data"][name] = str(Path(spec).expanduser().resolve())
    for custom in data["custom_datasets"].values():
        custom["path"] = str(Path(custom["path"]).expanduser().resolve())
    return data


def check_outputs(cfg: EvalConfig) -> None:
    """Output folders must be folders we can create and write: checked before anything is written."""
    for name in ("experiments_dir", "prepared_dir", "raw_dir"):
        check_output_dir(Path(getattr(cfg.paths, name)), f"paths.{name}")


def recorded_config(run_id: str) -> tuple[EvalConfig, str]:
    """The settings a run was created with (absolute paths, from the ledger) and its engine: a resume
    needs no ``--config`` and works from any folder."""
    if find_run_queue(run_id) is None:
        raise UserError(f"unknown run id {run_id!r} (see: python -m producer status)")
    conn = connect()
    import producer.huey_app  # noqa: F401 - lazy: opens huey.sqlite3; a damaged one is one line
    try:
        found = run_config(conn, run_id)
    except (ConfigError, ValueError) as exc:
        raise UserError(f"run {run_id}: its recorded settings cannot be read ({exc})") from None
    if found is None:
        raise UserError(f"unknown run id {run_id!r} (see: python -m producer status)")
    return found


def chunked_requests(cfg: EvalConfig, items: list[dict[str, Any]], chunk_size: int = CHUNK_SIZE,
                     shared: dict[tuple[str, str], str] | None = None) -> Iterator[NewRequest]:
    """Every request of every trial, in prefix-aware order, numbered into chunks.

    A request identical to one of an earlier trial (``producer.inputs.sweep_share``) is put in its owner's
    chunk and recorded in ``shared`` ((trial, custom_id) -> owner trial): it is generated once.
    """
    chunk, in_chunk, seq, group = -1, 0, 0, None
    owners: dict[str, tuple[str, int]] = {}
    trials = expand_trials(cfg)
    for trial in trials:
        texts = load_prompt_texts(cfg, trial.prompt_set)
        for req in iter_trial_requests(cfg, trial, items, texts):
            # one trial shares nothing: keep no key per request (memory stays flat on a large run)
            skey = share_key(req.model, req.custom_id, req.body) if len(trials) > 1 else ""
            if skey in owners:
                owner, owner_chunk = owners[skey]
                if shared is not None:
                    shared[(req.trial, req.custom_id)] = owner
                seq += 1
                yield NewRequest(req.trial, owner_chunk, seq, req.custom_id, req.model, req.condition, req.temp,
                                 req.type, req.body)
                continue
            key = (req.trial, req.temp, req.condition, req.model)
            if key != group or in_chunk >= chunk_size:
                chunk, in_chunk, group = chunk + 1, 0, key
            in_chunk += 1
            seq += 1
            if skey:
                owners[skey] = (req.trial, chunk)
            yield NewRequest(req.trial, chunk, seq, req.custom_id, req.model, req.condition, req.temp,
                             req.type, req.body)


def _snapshot_prepared(prepared: Any, run_dir: Path) -> Path:
    """Freeze the run's items next to its results: a later ``prepare`` cannot change what it scores."""
    target = RunFolder(run_dir).prepared_dir
    target.mkdir(parents=True, exist_ok=True)
    for src in (prepared.open_book, prepared.closed_book, prepared.manifest):
        if Path(src).is_file() and not (target / Path(src).name).is_file():
            copy_file_atomic(Path(src), target / Path(src).name)
    return target


def _write_manifests(cfg: EvalConfig, layout: RunLayout, config_path: Path | None, items: list[dict],
                     dry_run: bool = False) -> None:
    manifests.write_effective_config(layout, cfg, dry_run)
    manifests.init_run_state(layout, cfg, config_path, dry_run)
    manifests.update_phase(layout, "prepare", "done")
    manifests.update_phase(layout, "build", "done")
    for trial in expand_trials(cfg):
        manifests.write_trial_manifest(layout, cfg, trial, items, dry_run)


def _backend_engine(cfg: EvalConfig, dry_run: bool) -> str:
    """The engine recorded for a new run; a batch run checks its credentials now, not in a worker
    an hour later."""
    if not is_batch(cfg.backend) or dry_run:
        return run_engine(cfg, dry_run)
    try:
        check_backend_ready(cfg.backend)
    except BatchServiceError as exc:
        raise UserError(f"{exc} (or use --dry-run to try the flow offline)") from None
    return run_engine(cfg)


@dataclass
class _Planned:
    """The backend step's answer: ledger trial rows, requests (a stream for local runs) and shared ones."""

    trials: list[dict[str, Any]]
    requests: Iterable[NewRequest]
    shared: dict[tuple[str, str], str]
    fireworks_plan: Any = None  # the parts of a Fireworks run, registered after its requests


def _plan_local(cfg: EvalConfig, items: list[dict[str, Any]], chunk_size: int, engine: str,
                yes: bool) -> _Planned:
    """Chunks of consecutive requests; a new run of absurd size is refused unless ``yes``."""
    trial_list = expand_trials(cfg)
    per_trial = {t.slug: len(items) * requests_per_item(cfg, [t]) for t in trial_list}
    new_tokens = sum(t.max_tokens_for(cfg.item_type(i)) * requests_per_item(cfg, [t])
                     for t in trial_list for i in items)
    why = None if yes else size_refusal(cfg, sum(per_trial.values()), new_tokens, engine)
    if why:  # the exact count, now that every dataset is known; nothing of the run is written yet
        raise UserError(why)
    shared: dict[tuple[str, str], str] = {}
    if len(trial_list) > 1:  # a first pass learns which requests a sweep shares (registered first)
        for _ in chunked_requests(cfg, items, chunk_size, shared):
            pass
    trials = [{"trial": t.slug, "model": t.model, "total": per_trial[t.slug]} for t in trial_list]
    return _Planned(trials, chunked_requests(cfg, items, chunk_size), shared)  # streamed into the ledger


def _plan_fireworks(cfg: EvalConfig, items: list[dict[str, Any]]) -> _Planned:
    """Parts under the upload limit, every row checked before anything is written or paid."""
    plan, rows, totals = plan_run(cfg, items)
    return _Planned(list(totals.values()), rows, plan.shared_from, plan)


def _retry(conn: Any, run_id: str, engine: str) -> None:
    """Failed requests back to pending: Fireworks parts get a fresh job, local chunks are queued again."""
    if batch_backend_of(str(engine)) is not None:
        retry_failed_parts(run_id)
    else:
        retry_failed(conn, run_id)


def enqueue_run(
    cfg: EvalConfig,
    config_path: Path | None = None,
    run_id: str | None = None,
    limit_items: int | None = None,
    dry_run: bool = False,
    data_overrides: dict[str, str] | None = None,
    retry_failed_requests: bool = False,
    chunk_size: int = CHUNK_SIZE,
    force: bool = False,
    yes: bool = False,
    *,
    reconcile: Reconcile,
) -> EnqueueSummary:
    """Prepare if needed, register the run (once), and send a message for every open chunk or part.

    One flow for both backends; the backend step plans the work (local chunks or Fireworks parts).
    A new local run of absurd size is refused before its folder is written unless ``yes``; local
    requests are streamed into the ledger, never held in memory all at once."""
    connect()  # the ledger too (read-only, damaged): checked before anything is written
    cfg = apply_data_overrides(cfg, data_overrides)
    engine = _backend_engine(cfg, dry_run)
    if not is_batch(cfg.backend):  # a Fireworks run writes its outputs the same way, unchecked (as before)
        check_outputs(cfg)
    fingerprint = run_fingerprint(cfg, limit_items, engine)
    conn = connect()
    if run_id is not None:
        existing = get_run(conn, run_id)
        if existing is not None and existing["fingerprint"] != fingerprint and not force:
            raise UserError(
                f"run {run_id} was created with another config, --limit-items or engine; "
                "resume it with the same settings, start a new run id, or pass --force to continue it "
                "with the settings it was created with"
            )
    else:
        run_id = latest_run(conn, fingerprint, unfinished=True) or new_run_id(fingerprint)
    layout = RunLayout(Path(cfg.paths.experiments_dir).resolve(), run_id)
    existing = get_run(conn, run_id)
    created = existing is None
    registered = 0
    if created:
        prepared = ensure_prepared(cfg, data_overrides, limit_items)
        if is_batch(cfg.backend):
            planned = _plan_fireworks(cfg, prepared.items)
        else:
            planned = _plan_local(cfg, prepared.items, chunk_size, engine, yes)
        prepared_dir = _snapshot_prepared(prepared, layout.run_dir)
        _write_manifests(cfg, layout, config_path, prepared.items, dry_run=is_dry_run_engine(engine))
        run_row = {
            "run_id": run_id,
            "config_path": str(config_path) if config_path else None,
            "config_json": json.dumps(absolute_snapshot(cfg)),
            "fingerprint": fingerprint,
            "engine": engine,
            "limit_items": limit_items,
            "experiments_dir": str(layout.experiments_dir),
            "prepared_dir": str(prepared_dir),
        }
        register_shared(conn, run_id, planned.shared)  # before the requests: none is ever generated twice
        registered = register_run(conn, run_row, planned.trials, planned.requests)
        if planned.fireworks_plan is not None:
            register_plan(conn, run_id, planned.fireworks_plan)
        write_manifest_notes(conn, layout, run_id)
    else:
        set_run_stop(conn, run_id, False)
        if retry_failed_requests:
            _retry(conn, run_id, existing["engine"])
    enqueued = reconcile(run_id)  # local chunks and Fireworks parts alike
    return EnqueueSummary(run_id, created, request_count(conn, run_id), registered, enqueued,
                          layout.run_dir, trial_names(conn, run_id), engine)


def resume_run(run_id: str, retry_failed_requests: bool = False, *, reconcile: Reconcile) -> EnqueueSummary:
    """Continue a stopped or crashed run with the settings it was created with."""
    conn = connect()
    run = get_run(conn, run_id)
    if run is None:
        raise UserError(f"unknown run id {run_id!r} (see: python -m producer status)")
    set_run_stop(conn, run_id, False)
    if retry_failed_requests:
        _retry(conn, run_id, run["engine"])
    reopen_failed_analyses(conn, run_id)  # "resume when fixed": a report that could not be written is redone
    enqueued = reconcile(run_id)
    return EnqueueSummary(run_id, False, request_count(conn, run_id), 0, enqueued,
                          RunLayout(Path(run["experiments_dir"]), run_id).run_dir, trial_names(conn, run_id), run["engine"])
