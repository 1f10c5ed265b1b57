"""``producer stop --cancel-batches``: cancel every open batch job of a run on its provider.

Why here and not in a task: a user stopping a paid run wants the service to stop now, from the command
line, whether or not a worker is alive. The run's stop flag is raised first (by the caller), so no new
job is created after the cancels; each submitted part's job is cancelled once (an ended job is left
alone, so a second stop asks nothing more), and the part keeps its job: the next ``run --resume`` polls
it, keeps what it answered and fails the rest, which ``--retry-failed`` sends again.
"""

from __future__ import annotations

from config.engines import is_dry_run_engine
from producer.ledger import connect
from producer.ledger import fireworks as fw_ledger
from producer.ledger.run_record import run_settings
from workers.batch_provider import provider_for

NOTE = "cancelled by producer stop --cancel-batches"


def cancel_run_batches(run_id: str) -> list[str]:
    """Cancel the run's open jobs; one line per part for the console (none for a run with no open job)."""
    cfg, engine = run_settings(run_id)
    conn = connect()
    parts = [p for p in fw_ledger.parts_of(conn, run_id) if p["state"] == "submitted"]
    if not parts:
        return []
    if is_dry_run_engine(engine):  # its offline service lives inside the worker that ran it
        return [f"part {p['part']}: dry run, nothing is paid and nothing to cancel" for p in parts]
    provider = provider_for(cfg, engine)
    lines = []
    for p in parts:
        job = provider.cancel(p["job_id"])
        if job is None:
            lines.append(f"part {p['part']} {p['trial']}: job {p['job_id']} not found on the service")
            continue
        fw_ledger.update_part(conn, run_id, p["part"], job_state=job.state, progress=job.progress, error=NOTE)
        lines.append(f"part {p['part']} {p['trial']}: job {p['job_id']} {job.state.removeprefix('JOB_STATE_').lower()}")
    return lines
