"""The Fireworks backend's rows in the ledger: one per part (dataset, job, state, progress), its requests
and the results a part's job returned.

Why in the ledger: a batch run resumes without resubmitting (the job id is stored before and after
creation, and is deterministic anyway), ``status`` shows job state and progress, and a part's results
land in the same ``results``/``requests`` rows as a local run's, so export, scoring and report are
shared. The table itself is created with the rest of the schema (``producer.ledger.db``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from config.secrets import redact_secrets
from producer.ledger.db import transaction

PART_STATES = ("planned", "submitted", "downloaded", "failed")


def register_parts(conn: sqlite3.Connection, run_id: str, parts: Iterable[dict[str, Any]]) -> None:
    """Insert-or-ignore: a second enqueue of the same run keeps the states it already reached."""
    now = time.time()
    with transaction(conn):
        conn.executemany(
            "insert or ignore into fireworks_parts (run_id, part, trial, model, temp, condition, type, params,"
            " n_rows, input_dataset_id, output_dataset_id, job_id, created_at, updated_at)"
            " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run_id, p["part"], p["trial"], p["model"], p["temp"], p["condition"], p["type"],
              json.dumps(p["params"], sort_keys=True), p["n_rows"], p["input_dataset_id"],
              p["output_dataset_id"], p["job_id"], now, now) for p in parts],
        )


def get_part(conn: sqlite3.Connection, run_id: str, part: int) -> sqlite3.Row | None:
    return conn.execute("select * from fireworks_parts where run_id = ? and part = ?", (run_id, part)).fetchone()


def parts_of(conn: sqlite3.Connection, run_id: str) -> list[sqlite3.Row]:
    try:
        return conn.execute("select * from fireworks_parts where run_id = ? order by part", (run_id,)).fetchall()
    except sqlite3.OperationalError:  # read-only connection to a ledger without the table
        return []


def open_parts(conn: sqlite3.Connection, run_id: str | None = None) -> list[sqlite3.Row]:
    """Planned and submitted parts of runs not stopped (each needs a submit or a poll message)."""
    sql = ("select p.run_id, p.part, p.state from fireworks_parts p join runs u on u.run_id = p.run_id"
           " where p.state in ('planned', 'submitted') and u.stop_requested = 0")
    args: tuple = ()
    if run_id is not None:
        sql += " and p.run_id = ?"
        args = (run_id,)
    return conn.execute(sql, args).fetchall()


def update_part(conn: sqlite3.Connection, run_id: str, part: int, **fields: Any) -> None:
    if "progress" in fields and not isinstance(fields["progress"], (str, type(None))):
        fields["progress"] = json.dumps(fields["progress"], sort_keys=True)
    fields["updated_at"] = time.time()
    cols = ", ".join(f"{k} = ?" for k in fields)
    with transaction(conn):
        conn.execute(f"update fireworks_parts set {cols} where run_id = ? and part = ?",
                     [*fields.values(), run_id, part])


def part_requests(conn: sqlite3.Connection, run_id: str, part_no: int) -> list[sqlite3.Row]:
    """The part's requests in order, each with its system prompt text (stored once in ``texts``)."""
    return conn.execute(
        "select r.id, r.run_id, r.trial, r.custom_id, r.body, r.state, t.text as system_text from requests r"
        " left join texts t on t.sha = r.system_sha where r.run_id = ? and r.chunk = ? order by r.seq",
        (run_id, part_no),
    ).fetchall()


def record_part_outcome(conn: sqlite3.Connection, run_id: str, results: list[dict[str, Any]],
                        done_ids: list[int], failed: list[tuple[int, str]], pid: int, now: float) -> None:
    """A downloaded part in one transaction: its results (insert-or-ignore on the queue's result key, so
    a second download cannot add a row), its answered requests done, the rest failed (one attempt each).

    ``results``: dicts with trial, custom_id, text, finish_reason, prompt_tokens, completion_tokens,
    total_tokens, engine (JSON text) and request_id; ``failed``: (request id, error)."""
    with transaction(conn):
        conn.executemany(
            "insert or ignore into results (run_id, trial, custom_id, text, finish_reason, prompt_tokens,"
            " completion_tokens, total_tokens, usage_estimated, latency_s, engine, request_id, worker, created_at)"
            " values (:run_id, :trial, :custom_id, :text, :finish_reason, :prompt_tokens, :completion_tokens,"
            " :total_tokens, 0, null, :engine, :request_id, :worker, :now)",
            [{**r, "run_id": run_id, "worker": pid, "now": now} for r in results])
        conn.executemany(
            "update requests set state = 'done', attempts = attempts + 1, last_error = null, finished_at = ?,"
            " heartbeat = ? where id = ? and state != 'done'", [(now, now, i) for i in done_ids])
        conn.executemany(
            "update requests set state = 'failed', attempts = attempts + 1, last_error = ?, finished_at = ?"
            " where id = ? and state != 'done'", [(redact_secrets(error), now, i) for i, error in failed])


def _reopen_requests(conn: sqlite3.Connection, run_id: str, part_no: int) -> None:
    conn.execute("update requests set state = 'pending', worker = null where run_id = ? and chunk = ?"
                 " and state = 'failed'", (run_id, part_no))


def _reopen_run(conn: sqlite3.Connection, run_id: str) -> None:
    """Trials with pending requests are exported again; the run is active again."""
    conn.execute("update trials set export_state = 'pending' where run_id = ? and trial in (select distinct"
                 " trial from requests where run_id = ? and state = 'pending')", (run_id, run_id))
    conn.execute("update runs set state = 'active' where run_id = ?", (run_id,))


def reopen_failed_parts(conn: sqlite3.Connection, run_id: str, with_output: Iterable[str]) -> int:
    """``--retry-failed`` for a batch run; returns the parts reopened.

    A part marked failed although its job finished with output (``with_output``: job states that
    leave an output dataset) goes back to ``submitted`` and is downloaded again, so rows Fireworks
    already returned are never paid twice. Any other part with failed requests gets a fresh job id
    (``-r<n>``: the old job keeps its own) and goes back to ``planned``; only rows without a result
    are sent. The failed requests of both go back to ``pending``."""
    with_output = tuple(with_output)
    marks = ", ".join("?" * len(with_output))
    redownload = conn.execute(
        f"select part from fireworks_parts where run_id = ? and state = 'failed' and job_state in ({marks})",
        (run_id, *with_output)).fetchall()
    with transaction(conn):
        for row in redownload:
            conn.execute("update fireworks_parts set state = 'submitted', error = null, deadline_at = 0"
                         " where run_id = ? and part = ?", (run_id, row["part"]))
            _reopen_requests(conn, run_id, row["part"])
        if redownload:
            _reopen_run(conn, run_id)
    failed = conn.execute(
        "select p.part, p.job_id from fireworks_parts p where p.run_id = ? and (p.state = 'failed' or"
        " (p.state = 'downloaded' and exists (select 1 from requests r where r.run_id = p.run_id and"
        " r.chunk = p.part and r.state = 'failed')))", (run_id,)).fetchall()
    with transaction(conn):
        for row in failed:
            base, _, n = row["job_id"].partition("-r")
            k = int(n) + 1 if n.isdigit() else 1
            new = f"{base}-r{k}"
            conn.execute("update fireworks_parts set state = 'planned', job_id = ?, input_dataset_id = ?,"
                         " output_dataset_id = ?, error = null where run_id = ? and part = ?",
                         (new, f"{new}-in", f"{new}-out", run_id, row["part"]))
            _reopen_requests(conn, run_id, row["part"])
        if failed:
            _reopen_run(conn, run_id)
    return len(failed) + len(redownload)


def job_summary(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """Per part: trial, job id, state, processed / total, failed rows (for ``status``)."""
    rows = []
    for r in parts_of(conn, run_id):
        prog = json.loads(r["progress"]) if r["progress"] else {}
        rows.append({"part": r["part"], "trial": r["trial"], "job_id": r["job_id"], "state": r["state"],
                     "job_state": r["job_state"], "rows": r["n_rows"], "processed": prog.get("processed", 0),
                     "total": prog.get("total") or r["n_rows"], "failed": prog.get("failed", 0),
                     "error": r["error"], **({"usage": prog["usage"]} if prog.get("usage") else {})})
    return rows


def format_jobs(jobs: list[dict[str, Any]], backend: str) -> str:
    """``status``'s jobs table, headed by the run's provider (``fireworks jobs:``, ``openai jobs:``)."""
    lines = [f"  {backend} jobs:"]
    for j in jobs:
        state = (j["job_state"] or j["state"]).replace("JOB_STATE_", "")
        line = (f"    part {j['part']:>3} {j['trial']}  {state:<12} {j['processed']}/{j['total']}"
                f"  failed {j['failed']}  job {j['job_id']}")
        if j["error"]:
            line += f"  error: {j['error']}"
        lines.append(line)
    return "\n".join(lines)
