"""One part's life on a batch service (Fireworks, OpenAI, ...): upload -> job -> poll -> download -> results in the ledger.

Why idempotent steps: Huey may run a message twice and a worker may die anywhere. Every step first
looks at what exists (dataset, job) under the part's deterministic ids, so a resume never creates a
second job; results go into the ledger with the queue's UNIQUE key (insert-or-ignore), so parse,
score, stats, costs and report are the local pipeline's, unchanged. The service calls go through a
``BatchProvider`` (``workers/batch_provider.py``; Fireworks: ``provider.py``).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from config.atomic import write_text_atomic
from config.engines import batch_backend_of
from config.schema import EvalConfig
from producer.inputs.fireworks_plan import encode_rows
from producer.ledger import connect
from producer.ledger import fireworks as fw_ledger
from producer.ledger.queries import get_run
from producer.ledger.sweep import sharers
from producer.runs.layout import RunLayout
from producer.runs.results_io import ResultsFormatError
from workers.batch.deadline import check_deadline
from workers.batch_provider import BatchJob, BatchProvider
from workers.fireworks.client import BatchServiceError

log = logging.getLogger("workers.fireworks")


def _layout(run: sqlite3.Row) -> RunLayout:
    return RunLayout(Path(run["experiments_dir"]), run["run_id"])


def _backend(run: sqlite3.Row) -> str:
    """The run's batch provider (``fireworks``, ``openai``): its folder in the run and its results' engine."""
    return batch_backend_of(str(run["engine"])) or "fireworks"


def _part_requests(conn: sqlite3.Connection, run_id: str, part: sqlite3.Row) -> list[sqlite3.Row]:
    return fw_ledger.part_requests(conn, run_id, part["part"])


def _batch_row(req: sqlite3.Row) -> dict[str, Any]:
    body = json.loads(req["body"])
    msgs = body.get("messages") or []
    if msgs and msgs[0].get("role") == "system" and msgs[0].get("content") is None:
        body["messages"] = [{"role": "system", "content": req["system_text"] or ""}] + msgs[1:]
    return {"custom_id": req["custom_id"], "body": body}


def submit_part(run_id: str, part_no: int, cfg: EvalConfig, provider: BatchProvider) -> str:
    """Ensure the part's dataset is uploaded and its job exists; returns the part state."""
    conn = connect()
    part = fw_ledger.get_part(conn, run_id, part_no)
    if part is None or part["state"] in ("submitted", "downloaded", "failed"):
        return part["state"] if part is not None else "missing"
    job = provider.find_job(part["job_id"])  # look up before anything: a resumed part never pays twice
    if job is None:
        owned = [r for r in _part_requests(conn, run_id, part) if r["trial"] == part["trial"] and r["state"] != "done"]
        if not owned:  # a retried part whose rows all have results already
            fw_ledger.update_part(conn, run_id, part_no, state="downloaded")
            return "downloaded"
        rows = [_batch_row(r) for r in owned]
        encode = getattr(provider, "encode_part", None)  # a provider whose rows carry the model and sampling
        # one invalid row would fail the whole job: check locally first
        data = encode(rows, part["model"], json.loads(part["params"])) if encode else encode_rows(rows)
        run = get_run(conn, run_id)
        record = _layout(run).folder.batch_part(_backend(run), part_no)
        record.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, data.decode("utf-8"))
        display = f"{run_id} {part['trial']} p{part_no}"
        provider.upload(part["input_dataset_id"], record.name, data, len(rows), display)
        job = provider.create_job(part["job_id"], part["model"], part["input_dataset_id"], part["output_dataset_id"],
                                  json.loads(part["params"]), display)
        log.info("created %s job %s for part %s (%s rows)", _backend(run), part["job_id"], part_no, len(rows))
    fw_ledger.update_part(conn, run_id, part_no, state="submitted", job_state=job.state,
                          progress=job.progress, error=None)
    return "submitted"


def poll_part(run_id: str, part_no: int, cfg: EvalConfig, provider: BatchProvider) -> bool:
    """Refresh the job; on a terminal state download and ingest. True when the part is finished.

    A job that finished with output is never failed by its download: a refused or expired URL keeps
    the part open (fresh URLs at the next poll) until ``fireworks.poll_deadline_s`` stops the run."""
    conn = connect()
    part = fw_ledger.get_part(conn, run_id, part_no)
    if part is None or part["state"] in ("downloaded", "failed"):
        return True
    job = provider.find_job(part["job_id"])
    if job is None:
        raise BatchServiceError(f"job {part['job_id']} of part {part_no} not found on the batch service", 404)
    state = job.state
    fw_ledger.update_part(conn, run_id, part_no, job_state=state, progress=job.progress)
    if not job.terminal:
        check_deadline(conn, run_id, part, job, cfg, _backend(get_run(conn, run_id)))
        return False
    if job.failed:
        _record_usage(conn, run_id, part_no, job, provider, None)
        message = job.message
        _fail_open(conn, run_id, part, f"{_backend(get_run(conn, run_id))} job {part['job_id']} ended {state}: {message}")
        fw_ledger.update_part(conn, run_id, part_no, state="failed", error=message[:500])
        return True
    out_id = job.output_id or part["output_dataset_id"]
    try:
        counts, files = download_part(run_id, part, out_id, provider)
    except (BatchServiceError, ResultsFormatError) as exc:  # the job's output exists: never fail its rows
        note = f"{state}: output not downloaded yet ({exc}); trying again"
        fw_ledger.update_part(conn, run_id, part_no, error=note[:500])
        log.warning("part %s: %s", part_no, note)
        check_deadline(conn, run_id, part, job, cfg, _backend(get_run(conn, run_id)), problem=str(exc)[:200])
        return False
    _record_usage(conn, run_id, part_no, job, provider, files)
    fw_ledger.update_part(conn, run_id, part_no, state="downloaded",
                          error=None if job.complete else f"{state}: partial output")
    log.info("part %s: %s", part_no, counts)
    return True


def _record_usage(conn: sqlite3.Connection, run_id: str, part_no: int, job: BatchJob, provider: BatchProvider,
                  files: dict[str, bytes] | None) -> None:
    """The tokens the service reported for the ended job, kept with the part's progress (jobs.jsonl,
    costs.json's ``reported_by_provider``)."""
    usage = provider.usage(job, files)
    if usage is not None:
        fw_ledger.update_part(conn, run_id, part_no, progress={**job.progress, "usage": usage.as_dict()})


def download_part(run_id: str, part: sqlite3.Row, output_id: str,
                  provider: BatchProvider) -> tuple[dict[str, int], dict[str, bytes]]:
    """Download output and error files, keep copies in the run folder, and ingest by custom_id; returns
    the counts and the files."""
    conn = connect()
    run = get_run(conn, run_id)
    folder = _layout(run).folder.batch_download(_backend(run), part["part"])
    files = provider.download(output_id)  # every file in before anything is ingested
    for base, content in files.items():
        write_text_atomic(folder / base, content.decode("utf-8", "replace"))  # base: a safe name (download.py)
    results, errs = provider.read_rows(files)
    return ingest(conn, run_id, part, results, errs), files


def ingest(conn: sqlite3.Connection, run_id: str, part: sqlite3.Row, results: dict[str, dict[str, Any]],
           errors: dict[str, str]) -> dict[str, int]:
    """Results of the part's owner trial go to it and to every trial sharing that generation."""
    share = sharers(conn, run_id, part["trial"])
    reqs = _part_requests(conn, run_id, part)
    now, pid = time.time(), os.getpid()
    done_ids: list[int] = []
    result_rows: list[dict[str, Any]] = []
    failed: list[tuple[int, str]] = []
    job = part["job_id"]
    backend = _backend(get_run(conn, run_id))
    for req in reqs:
        owner = part["trial"]
        if req["trial"] != owner and req["trial"] not in share.get(req["custom_id"], []):
            continue
        row = results.get(req["custom_id"])
        if row is None:
            error = errors.get(req["custom_id"]) or f"no output row in {backend} job {job}"
            failed.append((req["id"], f"{backend}: {error}"))
            continue
        body = row["response"]["body"]
        choice = (body.get("choices") or [{}])[0]
        usage = body.get("usage") or {}
        engine = {"backend": backend, "job_id": job, "model": part["model"],
                  "cached_tokens": row.get("cached_tokens"), **row.get("engine_facts", {})}  # provider's own usage facts
        if req["trial"] != owner:
            engine["shared_control_from"] = owner
        result_rows.append({"trial": req["trial"], "custom_id": req["custom_id"],
                            "text": (choice.get("message") or {}).get("content") or "",
                            "finish_reason": choice.get("finish_reason"), "prompt_tokens": usage.get("prompt_tokens"),
                            "completion_tokens": usage.get("completion_tokens"),
                            "total_tokens": usage.get("total_tokens"), "engine": json.dumps(engine),
                            "request_id": row["response"].get("request_id")})
        done_ids.append(req["id"])
    fw_ledger.record_part_outcome(conn, run_id, result_rows, done_ids, failed, pid, now)
    return {"results": len(result_rows), "failed": len(failed)}


def _fail_open(conn: sqlite3.Connection, run_id: str, part: sqlite3.Row, error: str) -> None:
    ingest(conn, run_id, part, {}, {r["custom_id"]: error for r in _part_requests(conn, run_id, part)})
