"""The part runner is provider-neutral: what it prints and stops with names the run's own provider.

Why: the runner, its tasks and its deadline moved out of workers/fireworks (issue 25) so that a provider
is one module plus one registry row; an OpenAI run's status and deadline stop must not speak of
Fireworks (they did: "fireworks jobs:" and "check or cancel the job in the Fireworks console").
"""

from __future__ import annotations

import time

import pytest

from config.engines import BATCH_BACKENDS
from producer.ledger.status import format_status
from producer.ledger.status_record import QueueDepth, RunStatus, StateCounts
from workers.batch.deadline import stuck_reason
from workers.batch_provider import BatchJob

pytestmark = pytest.mark.unit

JOB = {"part": 0, "trial": "t1", "job_id": "xx-p0", "state": "submitted", "job_state": "in_progress",
       "rows": 4, "processed": 1, "total": 4, "failed": 0, "error": None}


def _status(engine: str) -> RunStatus:
    return RunStatus(run_id="r1", state="running", engine=engine, created_at=time.time(),
                     totals=StateCounts(done=1, running=0, queued=3, pending=0, failed=0, total=4),
                     requests_per_min=1.0, queue=QueueDepth(), run_dir="x", fireworks_jobs=[JOB])


@pytest.mark.parametrize("engine", sorted(BATCH_BACKENDS))
def test_status_heads_the_jobs_with_the_runs_provider(engine):
    text = format_status(_status(engine))
    assert f"  {engine} jobs:" in text
    others = set(BATCH_BACKENDS) - {engine}
    assert not any(f"{o} jobs:" in text for o in others)


@pytest.mark.parametrize("backend", sorted(BATCH_BACKENDS))
def test_a_stuck_job_names_its_provider_and_where_to_cancel_it(backend):
    spec = BATCH_BACKENDS[backend]
    job = BatchJob(state="in_progress", progress={}, terminal=False, created_at=time.time() - 7200)
    reason = stuck_reason(backend, "r1", {"part": 0, "trial": "t1", "job_id": "xx-p0"}, job, limit=3600,
                          deadline_at=time.time() - 10)
    assert spec.label in reason and spec.console in reason
    assert "2.0 h after" in reason and f"{backend}.poll_deadline_s 1.0 h" in reason
    assert "run --resume r1" in reason
    others = [BATCH_BACKENDS[o].console for o in BATCH_BACKENDS if o != backend]
    assert not any(c in reason for c in others)
