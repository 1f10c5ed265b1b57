"""The ``status`` summary: read-only, indexed queries, under a second on 100,000 requests.

Why "stalled" is computed here: the ledger's run state says what was asked (active, stopped, done);
whether anything is happening comes from the workers' heartbeats. An active run with open work and no
live worker (a crash, a kill, Ctrl+C) is shown as stalled, without ETA, and with the resume command.

Why read-only: ``status`` opens the ledger with ``mode=ro`` in WAL mode, so it never takes a write
lock and never blocks a worker, however often it is run (``--watch``).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from config.engines import batch_backend_of
from producer.host.queue_paths import huey_path
from producer.ledger.fireworks import format_jobs, job_summary
from producer.ledger.queries import HEARTBEAT_STALE_S, live_worker_pids, stop_reason
from producer.ledger.status_record import (
    ConditionStatus,
    QueueDepth,
    RecentError,
    RunStatus,
    StateCounts,
    TrialStatus,
    WorkerStatus,
)
from producer.ledger.writes import HOST
from producer.runs.layout import RunLayout

STATES = ("done", "running", "queued", "pending", "failed")
RATE_WINDOW_S = 300.0
STOP_GAP_S = 60.0  # no result for this long: the run was stopped (or waited); the rate restarts after it


def _queue_depth(path: Path) -> QueueDepth:
    if not path.exists():
        return QueueDepth(queued_messages=0, scheduled_messages=0)
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2.0)
        try:
            queued = conn.execute("select count(*) from task").fetchone()[0]
            scheduled = conn.execute("select count(*) from schedule").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return QueueDepth(queued_messages=None, scheduled_messages=None)
    return QueueDepth(queued_messages=queued, scheduled_messages=scheduled)


def run_status(conn: sqlite3.Connection, run_id: str, now: float | None = None) -> RunStatus:
    """Counts per trial and condition, rate, ETA, failures, live scores, workers and queue depth."""
    now = now or time.time()
    run = conn.execute("select * from runs where run_id = ?", (run_id,)).fetchone()
    if run is None:
        raise KeyError(run_id)
    trials: dict[str, TrialStatus] = {}
    for row in conn.execute(
        "select trial, condition, state, count(*) from requests where run_id = ? group by trial, condition, state",
        (run_id,),
    ):
        t = trials.setdefault(row[0], TrialStatus(conditions={}))
        cond = t.conditions.setdefault(row[1], ConditionStatus(**{s: 0 for s in STATES}, total=0))
        setattr(cond, row[2], row[3])
        cond.total += row[3]
    for row in conn.execute(
        "select trial, condition, count(*), avg(em), avg(abstained) from requests"
        " where run_id = ? and scored = 1 group by trial, condition", (run_id,),
    ):
        trials[row[0]].conditions[row[1]].set(scored=row[2], em=row[3], abstain_rate=row[4])
    for row in conn.execute(
        "select trial, export_state, analysis_state, analysis_error from trials where run_id = ?", (run_id,)
    ):
        trials.setdefault(row[0], TrialStatus(conditions={})).set(export=row[1], analysis=row[2],
                                                                  analysis_error=row[3])
    totals = StateCounts(**{s: 0 for s in STATES}, total=0)
    for t in trials.values():
        for cond in t.conditions.values():
            for key in (*STATES, "total"):
                setattr(totals, key, getattr(totals, key) + getattr(cond, key))
    times = [r[0] for r in conn.execute(
        "select created_at from results where run_id = ? and created_at >= ? order by created_at",
        (run_id, now - RATE_WINDOW_S))]
    per_min = recent_rate(times, now)
    remaining = totals.pending + totals.queued + totals.running
    eta_s = remaining / per_min * 60.0 if per_min > 0 and remaining else (0.0 if not remaining else None)
    errors = [
        RecentError(custom_id=r[0], error=r[1])
        for r in conn.execute(
            "select custom_id, last_error from requests where run_id = ? and state = 'failed'"
            " order by finished_at desc limit 5", (run_id,),
        )
    ]
    here = live_worker_pids(conn)  # a worker on this machine counts only while its process exists
    workers = [
        WorkerStatus(pid=r[0], role=r[1], heartbeat_age_s=round(now - r[2], 1), host=r[3])
        for r in conn.execute(
            "select pid, role, heartbeat, host from workers where state = 'alive' and heartbeat >= ?"
            " order by role, pid", (now - HEARTBEAT_STALE_S,),
        )
        if r[3] != HOST or r[0] in here
    ]
    state, stalled_since = run["state"], None
    exports_open = any(t.export in ("pending", "running") for t in trials.values())
    if state == "active" and not workers and (remaining or exports_open):
        # the ledger says active, but no worker has beaten its heart lately: crashed, killed or Ctrl+C
        last_beat = conn.execute("select max(heartbeat) from workers").fetchone()[0]
        state, stalled_since = "stalled", max(last_beat or 0.0, run["created_at"])
        eta_s = None  # nothing is being done: no ETA (the rate stays in --json as what the window saw)
    return RunStatus(
        run_id=run_id,
        state=state,
        stalled_since=stalled_since,
        stop_requested=bool(run["stop_requested"]),
        stop_reason=stop_reason(conn, run_id) if run["stop_requested"] else None,
        engine=run["engine"],
        created_at=run["created_at"],
        totals=totals,
        requests_per_min=round(per_min, 2),
        eta_s=None if eta_s is None else round(eta_s, 1),
        trials=trials,
        recent_errors=errors,
        workers=workers,
        queue=_queue_depth(huey_path()),
        run_dir=str(RunLayout(Path(run["experiments_dir"]), run_id).run_dir),
        fireworks_jobs=_fireworks_jobs(conn, run_id, run["engine"]),
    )


def _fireworks_jobs(conn: sqlite3.Connection, run_id: str, engine: str) -> list[dict[str, Any]]:
    """Batch runs: each part's job state and progress (``fireworks_parts``)."""
    if batch_backend_of(str(engine)) is None:
        return []
    return job_summary(conn, run_id)


def recent_rate(times: list[float], now: float, gap_s: float = STOP_GAP_S) -> float:
    """Results per minute over the last RATE_WINDOW_S, counted from after the last pause longer than
    ``gap_s`` (a stop and resume): the time a run was stopped is not time it was slow."""
    for i in range(len(times) - 1, 0, -1):
        if times[i] - times[i - 1] > gap_s:
            times = times[i:]
            break
    if not times:
        return 0.0
    return len(times) / max(1.0, min(RATE_WINDOW_S, now - times[0])) * 60.0


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def format_status(st: RunStatus) -> str:
    """Plain ASCII (cp1252-safe) table for the console."""
    tot = st.totals
    rate = "rate - (no live worker)  ETA -" if st.stalled else \
        f"rate {st.requests_per_min:.1f} req/min  ETA {format_eta(st.eta_s)}"
    lines = [
        f"run {st.run_id}  state {st.state}{' (stop requested)' if st.stop_requested else ''}"
        f"  engine {st.engine}",
        f"  done {tot.done}/{tot.total}  running {tot.running}  queued {tot.queued}"
        f"  pending {tot.pending}  failed {tot.failed}",
        f"  {rate}"
        f"  queue {st.queue.queued_messages} messages (+{st.queue.scheduled_messages} scheduled)",
    ]
    if st.stop_reason:
        lines.append(f"  stopped: {st.stop_reason}")
        lines.append(f"  resume when fixed: python -m producer run --resume {st.run_id}")
    if st.stalled_since is not None:
        since = time.strftime("%H:%M", time.localtime(st.stalled_since))
        lines.append(f"  stalled: no live worker since {since}")
        lines.append(f"  resume with: python -m producer run --resume {st.run_id}")
    for name, t in st.trials.items():
        lines.append(f"  trial {name}  export {t.export or '-'}"
                     + (f"  analysis {t.analysis}" if t.analysis else ""))
        for cond, c in sorted(t.conditions.items()):
            em = f"  EM {c.em:.3f} ({c.scored} scored)" if c.em is not None else ""
            lines.append(
                f"    {cond:<10} done {c.done:>6}/{c.total:<6} running {c.running:>4}"
                f"  queued {c.queued:>6}  pending {c.pending:>6}  failed {c.failed:>4}{em}"
            )
    if st.workers:
        ws = ", ".join(f"{w.pid} {w.role}" for w in st.workers)
        lines.append(f"  workers: {ws}")
    else:
        lines.append("  workers: none running (start: python -m workers -w 2)")
    if st.fireworks_jobs:
        lines.append(format_jobs(st.fireworks_jobs, batch_backend_of(st.engine) or st.engine))
    for e in st.recent_errors:
        lines.append(f"  failed {e.custom_id}: {e.error}")
    return "\n".join(lines)
