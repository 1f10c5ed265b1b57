"""Register a Fireworks run in the ledger (requests, parts, shared controls) and queue its parts.

Why the same ledger as local runs: export, scoring, stats, costs, report and ``status`` read the
ledger, so the batch path reuses them unchanged. Each part's requests carry the part number as their
chunk; a request shared with another trial carries the owner's part, so it completes with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from config.schema import EvalConfig
from producer.console import UserError
from producer.layout import RunLayout
from producer.ledger import connect
from producer.ledger import fireworks as fw_ledger
from producer.ledger.queries import get_run, latest_run, request_count, trial_names
from producer.ledger.run_record import set_run_stop
from producer.ledger.writes import NewRequest, register_run
from workers.fireworks.parts import FireworksPlan, RowValidationError, fireworks_ids, plan_parts, validate_row
from workers.fireworks.runner import DRY_RUN_ENGINE


def build_plan(cfg: EvalConfig, items: list[dict[str, Any]]) -> tuple[FireworksPlan, list[NewRequest], dict]:
    """Every trial's requests (its own model and parameters), cut into parts; ledger rows numbered."""
    from producer.messages import load_prompt_texts
    from producer.requests_build import iter_trial_requests
    from producer.trials import expand_trials

    per_trial = []
    for trial in expand_trials(cfg):
        texts = load_prompt_texts(cfg, trial.prompt_set)
        per_trial.append((trial, list(iter_trial_requests(cfg, trial, items, texts))))
    try:
        for _, reqs in per_trial:  # one invalid row fails a whole job: refuse before anything is paid
            for r in reqs:
                validate_row(r.to_batch_row())
        plan = plan_parts(cfg, per_trial)
    except RowValidationError as exc:
        raise UserError(f"invalid batch request: {exc}") from None
    rows, totals, seq = [], {}, 0
    for trial, reqs in per_trial:
        totals[trial.slug] = {"trial": trial.slug, "model": trial.model, "total": len(reqs)}
        for r in reqs:
            seq += 1
            rows.append(NewRequest(r.trial, plan.chunk_of[(r.trial, r.custom_id)], seq, r.custom_id, r.model,
                                   r.condition, r.temp, r.type, r.body))
    return plan, rows, totals


def enqueue_fireworks_run(cfg: EvalConfig, config_path: Path | None = None, run_id: str | None = None,
                          limit_items: int | None = None, dry_run: bool = False,
                          data_overrides: dict[str, str] | None = None, retry_failed_requests: bool = False,
                          force: bool = False) -> Any:
    """Like the local enqueue: idempotent, resumable, one transaction for the ledger rows."""
    from config.lookup import apply_data_overrides
    from producer.enqueue import (
        EnqueueSummary,
        _snapshot_prepared,
        _write_manifests,
        absolute_snapshot,
        new_run_id,
        run_fingerprint,
    )
    from producer.reconcile import reconcile
    from workers.fireworks.tasks import reconcile_fireworks

    cfg = apply_data_overrides(cfg, data_overrides)
    engine = DRY_RUN_ENGINE if dry_run else "fireworks"
    if not dry_run:
        from workers.fireworks.client import Credentials, FireworksError

        try:
            Credentials.from_env()  # fail now, not in a worker an hour later
        except FireworksError as exc:
            raise UserError(f"{exc} (or use --dry-run to try the flow offline)") from None
    fingerprint = run_fingerprint(cfg, limit_items, engine)
    conn = connect()
    if run_id is not None:
        existing = get_run(conn, run_id)
        if existing is not None and existing["fingerprint"] != fingerprint and not force:
            raise UserError(f"run {run_id} was created with another config, --limit-items or backend; resume it "
                            "with the same settings, start a new run id, or pass --force to continue it anyway "
                            "with its original settings")
    else:
        run_id = latest_run(conn, fingerprint, unfinished=True) or new_run_id(fingerprint)
    layout = RunLayout(Path(cfg.paths.experiments_dir).resolve(), run_id)
    created = get_run(conn, run_id) is None
    registered = 0
    if created:
        from producer.prepare import ensure_prepared

        prepared = ensure_prepared(cfg, data_overrides, limit_items)
        prepared_dir = _snapshot_prepared(prepared, layout.run_dir)
        _write_manifests(cfg, layout, config_path, prepared.items, dry_run=dry_run)
        plan, rows, totals = build_plan(cfg, prepared.items)
        run_row = {"run_id": run_id, "config_path": str(config_path) if config_path else None,
                   "config_json": json.dumps(absolute_snapshot(cfg)), "fingerprint": fingerprint,
                   "engine": engine, "limit_items": limit_items, "experiments_dir": str(layout.experiments_dir),
                   "prepared_dir": str(prepared_dir)}
        registered = register_run(conn, run_row, list(totals.values()), rows)
        parts = [{"part": p.index, "trial": p.trial, "model": p.model, "temp": p.temp, "condition": p.condition,
                  "type": p.type, "params": p.inference_parameters, "n_rows": len(p.custom_ids),
                  **fireworks_ids(run_id, p.trial, p.index)} for p in plan.parts]
        fw_ledger.register_parts(conn, run_id, parts, plan.shared_from)
        from workers.fireworks.runner import save_job_table, write_shared_manifest_notes

        write_shared_manifest_notes(run_id)
        save_job_table(run_id)
    else:
        set_run_stop(conn, run_id, False)
        if retry_failed_requests:
            retry_failed_parts(run_id)
    reconcile(run_id)
    sent = reconcile_fireworks(run_id)
    return EnqueueSummary(run_id, created, request_count(conn, run_id), registered, sent, layout.run_dir,
                          trial_names(conn, run_id), engine)


def retry_failed_parts(run_id: str) -> int:
    """Parts with failed requests (a failed or expired job, rows in the error file) get a fresh job id
    (``-r<n>``: the old job keeps its own) and go back to planned; only rows without a result are sent.

    A part marked failed although its job finished with output (a download that failed, in a ledger
    written before downloads were retried) never gets a new job: it goes back to ``submitted`` and its
    output is downloaded again, so rows Fireworks already returned are never paid twice."""
    from workers.fireworks.client import TERMINAL_OK, TERMINAL_PARTIAL

    return fw_ledger.reopen_failed_parts(connect(), run_id, TERMINAL_OK | TERMINAL_PARTIAL)
