"""The end of a trial: raw results JSONL, predictions.csv and errors.jsonl, written once, then analysis.

Why a claimed step: the ledger lets exactly one worker export a finished trial (pending -> running ->
done); a worker killed half-way leaves ``running`` with a dead pid, which reconcile turns back into
``pending``. Files are written atomically, so a re-run after a crash rewrites the same content.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config.atomic import write_jsonl_atomic
from config.contract import (
    CONDITIONS,
    CONTEXTS_JSONL,
    ERRORS_JSONL,
    PREDICTIONS_CSV,
    RAW_RESULTS_JSONL,
    TRANSCRIPTS_JSONL,
)
from config.engines import batch_backend_of
from producer.host.console import UserError
from producer.inputs.prepare import load_prepared_items
from producer.ledger import connect
from producer.ledger.queries import failed_rows, get_run, result_rows, transcript_rows, trial_names
from producer.ledger.run_record import run_settings
from producer.ledger.writes import claim_export, fail_export, finish_export
from producer.runs.layout import RunLayout
from producer.runs.manifests import mark_usage_estimated, record_run_phases, set_stop_flag, update_stage
from producer.runs.results_io import raw_result_row, write_predictions_csv
from producer.runs.trials import expand_trials
from scoring.transcripts import build_transcripts, context_rows

log = logging.getLogger("workers")


def _raw_rows(rows: list[Any]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        usage = {"prompt_tokens": r["prompt_tokens"], "completion_tokens": r["completion_tokens"],
                 "total_tokens": r["total_tokens"]}
        engine = json.loads(r["engine"]) if r["engine"] else {}
        if engine.get("cached_tokens") is not None:  # Fireworks usage.prompt_tokens_details (costs)
            usage["prompt_tokens_details"] = {"cached_tokens": engine["cached_tokens"]}
        if r["usage_estimated"]:
            engine["usage_estimated"] = True
        out.append(raw_result_row(r["custom_id"], r["text"], r["finish_reason"], usage, r["request_id"],
                                  r["latency_s"], engine))
    return out


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def write_trial_files(run_id: str, trial: str) -> dict[str, Any]:
    """Write the files of a trial from the ledger; returns paths and counts."""
    conn = connect()
    run = get_run(conn, run_id)
    layout = RunLayout(Path(run["experiments_dir"]), run_id)
    results_dir = layout.results_dir(trial)
    results_dir.mkdir(parents=True, exist_ok=True)
    rows = result_rows(conn, run_id, trial)
    raw = _raw_rows(rows)
    write_jsonl_atomic(results_dir / RAW_RESULTS_JSONL, raw)
    n_pred = write_predictions_csv(raw, results_dir / PREDICTIONS_CSV)
    errors = [{"custom_id": e["custom_id"], "attempts": e["attempts"], "error": e["last_error"],
               "failed_at": _iso(e["finished_at"])} for e in failed_rows(conn, run_id, trial)]
    write_jsonl_atomic(results_dir / ERRORS_JSONL, errors)
    n_lines = _write_transcripts(conn, run_id, trial, results_dir)
    _write_local_costs(run_id, trial, results_dir, raw, [r["created_at"] for r in rows])
    estimated = any(r["engine"].get("usage_estimated") for r in raw)
    # the trial's own requests answered from the response cache: one lookup each, as `cache stats` counts
    # them; a sweep's shared control answer (shared_control_from) is the owner trial's lookup, counted apart
    hit_rows = [r for r in raw if r["engine"].get("cache_hit")]
    shared_hits = sum(1 for r in hit_rows if r["engine"].get("shared_control_from"))
    cache_hits = len(hit_rows) - shared_hits
    return {"results_dir": results_dir, "reports_dir": layout.reports_dir(trial), "results": n_pred,
            "manifest": layout.trial_manifest(trial), "failed": len(errors), "usage_estimated": estimated, "layout": layout, "cache_hits": cache_hits,
            "shared_cache_hits": shared_hits, "transcripts": n_lines}


def _write_transcripts(conn: Any, run_id: str, trial: str, results_dir: Path) -> int:
    """transcripts.jsonl from the ledger's requests and results (scoring.transcripts), after contexts.jsonl:
    every context_id a line names is already there. Returns the number of lines."""
    from scoring.aggregate import items_by_key  # lazy: pandas, only when a trial is analysed

    cfg, _ = run_settings(run_id)
    try:
        items = load_prepared_items(Path(get_run(conn, run_id)["prepared_dir"]))
    except UserError as exc:  # the run's items were deleted: the answers still go out, unscored
        log.warning("transcripts of %s without questions or scores: %s", trial, exc)
        items = []
    write_jsonl_atomic(results_dir / CONTEXTS_JSONL, context_rows(items))
    spec = next((t for t in expand_trials(cfg) if t.slug == trial), None)
    files = {c: spec.prompt_file(cfg, c).as_posix() if spec is not None else None for c in CONDITIONS}
    count = 0

    def lines() -> Any:
        nonlocal count
        rows = (dict(r) for r in transcript_rows(conn, run_id, trial))
        for line in build_transcripts(rows, items_by_key(items), files, cfg.unsupported):
            count += 1
            yield line

    write_jsonl_atomic(results_dir / TRANSCRIPTS_JSONL, lines())
    return count


def _write_local_costs(run_id: str, trial: str, results_dir: Path, raw: list[dict[str, Any]],
                       finished_at: list[float]) -> None:
    """local_costs.json + telemetry.csv (local backends only); never fails the export."""
    try:
        from telemetry.local_costs import export_local_costs  # lazy: numpy/psutil, only for local costs

        cfg, _ = run_settings(run_id)
        export_local_costs(results_dir, raw, run_id, trial, cfg, finished_at)
    except Exception:  # noqa: BLE001 - telemetry is advisory
        log.exception("local_costs.json for %s not written", results_dir)


def _update_manifest(info: dict[str, Any]) -> None:
    """Record the generated/parsed stages in trial_manifest.json."""
    manifest = info["manifest"]
    rd = info["results_dir"]
    update_stage(manifest, "generated", "done", [rd / RAW_RESULTS_JSONL, rd / ERRORS_JSONL],
                 results=info["results"], failed=info["failed"], cache_hits=info["cache_hits"],
                 **({"shared_cache_hits": info["shared_cache_hits"]} if info.get("shared_cache_hits") else {}))
    update_stage(manifest, "parsed", "done", [rd / PREDICTIONS_CSV, rd / TRANSCRIPTS_JSONL, rd / CONTEXTS_JSONL],
                 transcripts=info["transcripts"])
    # recorded either way: a report must say "reported by the engine", not "not available" (issue 29)
    mark_usage_estimated(manifest, bool(info["usage_estimated"]))


def _analyse(run_id: str, info: dict[str, Any]) -> tuple[str, str | None]:
    """Scores, statistics, costs and the report of one trial (scoring.pipeline)."""
    from scoring import pipeline  # lazy: pandas/scipy, only when a trial is analysed

    cfg, _ = run_settings(run_id)
    run = get_run(connect(), run_id)
    try:
        pipeline.analyse_trial(info["results_dir"], Path(run["prepared_dir"]), cfg, info["reports_dir"])
    except Exception as exc:  # analysis can be re-run by hand; the exported results stand
        log.exception("analysis of %s failed", info["results_dir"])
        return "failed", f"{type(exc).__name__}: {exc}"
    return "done", None


def export_failed(run_id: str, trial: str, exc: BaseException) -> str:
    """The trial's files could not be written (disk full, read-only folder): stop the run with the reason
    instead of retrying for ever; ``status`` shows it, ``run`` exits with NOT_WRITTEN, resume retries."""
    reason = " ".join(f"export of trial {trial} failed: {type(exc).__name__}: {exc}".split())[:500]
    conn = connect()
    fail_export(conn, run_id, trial, reason)  # export failed and run stopped, in one transaction
    layout = RunLayout(Path(get_run(conn, run_id)["experiments_dir"]), run_id)
    try:  # the run folder may be the very thing that cannot be written
        set_stop_flag(layout, True)
    except Exception as err:  # noqa: BLE001
        log.warning("run_state.json of %s not updated: %s", run_id, err)
    _record_phases(run_id, failed=("parse", reason))
    log.error("%s; resume when fixed: python -m producer run --resume %s", reason, run_id)
    return reason


def export_trial_files(run_id: str, trial: str) -> bool:
    """Export a complete trial exactly once; False when not complete or another worker has it."""
    conn = connect()
    if not claim_export(conn, run_id, trial, os.getpid()):
        return False
    try:
        info = write_trial_files(run_id, trial)
        _update_manifest(info)
    except Exception as exc:  # noqa: BLE001 - every cause stops the run with a reason, none loops
        export_failed(run_id, trial, exc)
        return False
    log.info("exported %s: %s results, %s failed", info["results_dir"], info["results"], info["failed"])
    state, error = _analyse(run_id, info)
    last = finish_export(conn, run_id, trial, "done", analysis_state=state, analysis_error=error)
    _record_phases(run_id)
    if last:
        _summarise_run(run_id)
    return True


def _record_phases(run_id: str, failed: tuple[str, str] | None = None) -> None:
    """Mirror the trials' stages into run_state.json's phases (advisory: never fails the export)."""
    try:
        conn = connect()
        run = get_run(conn, run_id)
        layout = RunLayout(Path(run["experiments_dir"]), run_id)
        trials = trial_names(conn, run_id)
        batch = batch_backend_of(str(run["engine"])) is not None
        record_run_phases(layout, trials, batch=batch, failed=failed)
    except Exception as exc:  # noqa: BLE001 - a read-only run folder must not hide the real error
        log.warning("run_state.json phases of %s not updated: %s", run_id, exc)


def _summarise_run(run_id: str) -> None:
    """A run of several trials gets summary.html comparing their treatment effects (scoring.summary)."""
    conn = connect()
    if len(trial_names(conn, run_id)) < 2:
        return
    from scoring.summary import write_run_summary  # lazy: pandas, only when a trial is analysed

    run_dir = RunLayout(Path(get_run(conn, run_id)["experiments_dir"]), run_id).run_dir
    try:
        log.info("run summary: %s", write_run_summary(run_dir))
    except Exception:  # the trials' own reports stand; `python -m scoring.summary` can retry
        log.exception("run summary of %s failed", run_dir)
