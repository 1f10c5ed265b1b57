"""One part's life on Fireworks: upload -> job -> poll -> download -> results in the ledger.

Why idempotent steps: Huey may run a message twice and a worker may die anywhere. Every step first
looks at what exists (dataset, job) under the part's deterministic ids, so a resume never creates a
second job; results go into the ledger with the queue's UNIQUE key (insert-or-ignore), so parse,
score, stats, costs and report are the local pipeline's, unchanged.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from config.atomic import write_text_atomic
from config.schema import EvalConfig
from producer.fireworks_plan import DRY_RUN_ENGINE, encode_rows
from producer.layout import RunLayout
from producer.ledger import connect
from producer.ledger import fireworks as fw_ledger
from producer.ledger.queries import get_run
from producer.ledger.sweep import sharers
from producer.results_io import ResultsFormatError, normalise_raw_row
from workers.fireworks.client import (
    TERMINAL_FAILED,
    TERMINAL_STATES,
    Credentials,
    FireworksClient,
    FireworksError,
    _Secret,
    job_progress,
    short_id,
)
from workers.fireworks.deadline import check_deadline
from workers.fireworks.download import fetch_output_files, is_output_file

log = logging.getLogger("workers.fireworks")

_fake_lock = threading.Lock()
_fake: dict[int, Any] = {}


def make_client(cfg: EvalConfig, engine: str) -> FireworksClient:
    """The real API (key from env/.env), or for ``--dry-run`` an in-process offline fake server."""
    deadline, backoff = cfg.fireworks.request_deadline_s, cfg.retry_backoff_s
    if engine == DRY_RUN_ENGINE:
        from workers.fireworks.fake_server import (  # lazy: the fake server, dry runs only
            FakeFireworksServer,
            FakeState,
        )

        with _fake_lock:
            srv = _fake.get(os.getpid())
            if srv is None:
                srv = _fake[os.getpid()] = FakeFireworksServer(FakeState(api_key="dry-run")).start()
        creds = Credentials(_Secret("dry-run"), "dry-run", srv.base_url)
        return FireworksClient(creds, deadline_s=deadline, backoff_s=backoff)
    return FireworksClient(Credentials.from_env(), deadline_s=deadline, backoff_s=backoff)


def _layout(run: sqlite3.Row) -> RunLayout:
    return RunLayout(Path(run["experiments_dir"]), run["run_id"])


def _part_requests(conn: sqlite3.Connection, run_id: str, part: sqlite3.Row) -> list[sqlite3.Row]:
    return fw_ledger.part_requests(conn, run_id, part["part"])


def _batch_row(req: sqlite3.Row) -> dict[str, Any]:
    body = json.loads(req["body"])
    msgs = body.get("messages") or []
    if msgs and msgs[0].get("role") == "system" and msgs[0].get("content") is None:
        body["messages"] = [{"role": "system", "content": req["system_text"] or ""}] + msgs[1:]
    return {"custom_id": req["custom_id"], "body": body}


def _wait_ready(client: FireworksClient, dataset_id: str, cfg: EvalConfig) -> None:
    deadline = time.monotonic() + cfg.fireworks.request_deadline_s
    while True:
        ds = client.get_dataset(dataset_id) or {}
        if ds.get("state") == "READY":
            return
        if time.monotonic() > deadline:
            raise FireworksError(f"dataset {dataset_id} not READY after {cfg.fireworks.request_deadline_s:.0f}s"
                                 f" (state {ds.get('state')})")
        time.sleep(min(cfg.fireworks.poll_interval_s, 5.0))


def submit_part(run_id: str, part_no: int, cfg: EvalConfig, client: FireworksClient) -> str:
    """Ensure the part's dataset is uploaded and its job exists; returns the part state."""
    conn = connect()
    part = fw_ledger.get_part(conn, run_id, part_no)
    if part is None or part["state"] in ("submitted", "downloaded", "failed"):
        return part["state"] if part is not None else "missing"
    job = client.get_job(part["job_id"])  # look up before anything: a resumed part never pays twice
    if job is None:
        owned = [r for r in _part_requests(conn, run_id, part) if r["trial"] == part["trial"] and r["state"] != "done"]
        if not owned:  # a retried part whose rows all have results already
            fw_ledger.update_part(conn, run_id, part_no, state="downloaded")
            return "downloaded"
        rows = [_batch_row(r) for r in owned]
        data = encode_rows(rows)  # one invalid row would fail the whole job: check locally first
        run = get_run(conn, run_id)
        record = _layout(run).run_dir / "fireworks" / "parts" / f"part-{part_no:04d}.jsonl"
        record.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(record, data.decode("utf-8"))
        ds = client.get_dataset(part["input_dataset_id"])
        if ds is None:
            ds = client.create_dataset(part["input_dataset_id"], len(rows), f"{run_id} {part['trial']} p{part_no}")
        if ds.get("state") != "READY":
            client.upload_dataset(part["input_dataset_id"], record.name, data)
            _wait_ready(client, part["input_dataset_id"], cfg)
        job = client.create_job(part["job_id"], part["model"], part["input_dataset_id"], part["output_dataset_id"],
                                json.loads(part["params"]), f"{run_id} {part['trial']} p{part_no}")
        log.info("created Fireworks job %s for part %s (%s rows)", part["job_id"], part_no, len(rows))
    fw_ledger.update_part(conn, run_id, part_no, state="submitted", job_state=job.get("state"),
                      progress=job_progress(job), error=None)
    return "submitted"


def poll_part(run_id: str, part_no: int, cfg: EvalConfig, client: FireworksClient) -> bool:
    """Refresh the job; on a terminal state download and ingest. True when the part is finished.

    A job that finished with output is never failed by its download: a refused or expired URL keeps
    the part open (fresh URLs at the next poll) until ``fireworks.poll_deadline_s`` stops the run."""
    conn = connect()
    part = fw_ledger.get_part(conn, run_id, part_no)
    if part is None or part["state"] in ("downloaded", "failed"):
        return True
    job = client.get_job(part["job_id"])
    if job is None:
        raise FireworksError(f"job {part['job_id']} of part {part_no} not found on Fireworks", 404)
    state = job.get("state") or "JOB_STATE_UNSPECIFIED"
    fw_ledger.update_part(conn, run_id, part_no, job_state=state, progress=job_progress(job))
    if state not in TERMINAL_STATES:
        check_deadline(conn, run_id, part, job, cfg)
        return False
    if state in TERMINAL_FAILED:
        message = ((job.get("status") or {}).get("message") or state).strip()
        _fail_open(conn, run_id, part, f"Fireworks job {part['job_id']} ended {state}: {message}")
        fw_ledger.update_part(conn, run_id, part_no, state="failed", error=message[:500])
        return True
    out_id = short_id(job.get("outputDatasetId")) or part["output_dataset_id"]
    try:
        counts = download_part(run_id, part, out_id, client)
    except (FireworksError, ResultsFormatError) as exc:  # the job's output exists: never fail its rows
        note = f"{state}: output not downloaded yet ({exc}); trying again"
        fw_ledger.update_part(conn, run_id, part_no, error=note[:500])
        log.warning("part %s: %s", part_no, note)
        check_deadline(conn, run_id, part, job, cfg, problem=str(exc)[:200])
        return False
    fw_ledger.update_part(conn, run_id, part_no, state="downloaded",
                      error=None if state == "JOB_STATE_COMPLETED" else f"{state}: partial output")
    log.info("part %s: %s", part_no, counts)
    return True


def _parse_lines(content: bytes, source: str) -> list[dict[str, Any]]:
    rows = []
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultsFormatError(f"{source}: not UTF-8 text") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise ResultsFormatError(f"{source}: line {n}: invalid JSON") from None
    return rows


def download_part(run_id: str, part: sqlite3.Row, output_dataset_id: str, client: FireworksClient) -> dict[str, int]:
    """Download output and error files, keep copies in the run folder, and ingest by custom_id."""
    conn = connect()
    run = get_run(conn, run_id)
    folder = _layout(run).run_dir / "fireworks" / "downloads" / f"part-{part['part']:04d}"
    files = fetch_output_files(client, output_dataset_id)  # every file in before anything is ingested
    outputs = [(name, data) for name, data in files.items() if is_output_file(name)]
    errors = [(name, data) for name, data in files.items() if not is_output_file(name)]
    results: dict[str, dict[str, Any]] = {}
    errs: dict[str, str] = {}
    for base, content in outputs:
        write_text_atomic(folder / base, content.decode("utf-8", "replace"))  # base: a safe name (download.py)
        for row in _parse_lines(content, base):
            norm = normalise_raw_row(row)
            details = ((row.get("response") or {}).get("usage") or {}).get("prompt_tokens_details") or {}
            norm["cached_tokens"] = details.get("cached_tokens")
            results[norm["custom_id"]] = norm  # rows arrive out of order: join on custom_id
    for base, content in errors:
        write_text_atomic(folder / base, content.decode("utf-8", "replace"))
        for row in _parse_lines(content, base):
            if isinstance(row, dict) and row.get("custom_id"):
                err = row.get("error") or row.get("response") or "failed on Fireworks"
                errs[str(row["custom_id"])] = json.dumps(err, ensure_ascii=False)[:500] \
                    if not isinstance(err, str) else err
    return ingest(conn, run_id, part, results, errs)


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
    for req in reqs:
        owner = part["trial"]
        if req["trial"] != owner and req["trial"] not in share.get(req["custom_id"], []):
            continue
        row = results.get(req["custom_id"])
        if row is None:
            error = errors.get(req["custom_id"]) or f"no output row in Fireworks job {job}"
            failed.append((req["id"], f"fireworks: {error}"))
            continue
        body = row["response"]["body"]
        choice = (body.get("choices") or [{}])[0]
        usage = body.get("usage") or {}
        engine = {"backend": "fireworks", "job_id": job, "model": part["model"],
                  "cached_tokens": row.get("cached_tokens")}
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
