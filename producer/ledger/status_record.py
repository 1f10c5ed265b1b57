"""The ``status`` record: what ``run_status`` returns and ``status --json`` prints (the same keys as ever).

Why a model: ``status``, ``status --json``, ``run``'s progress line and the tests read the same fields by
attribute, so a renamed field fails at once instead of as a KeyError deep in a watch loop. Fields that the
query leaves out (``scored``/``em``/``abstain_rate`` before anything is scored, ``export``/``analysis``
of a trial without a ledger row) stay out of the JSON (``exclude_unset``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Status(BaseModel):
    model_config = ConfigDict(extra="allow")

    def set(self, **values: Any) -> None:
        """Set several fields at once (each becomes part of the JSON)."""
        for name, value in values.items():
            setattr(self, name, value)


class StateCounts(_Status):
    """Requests per state (and their total) of a condition, or of the whole run (``totals``)."""

    done: int = 0
    running: int = 0
    queued: int = 0
    pending: int = 0
    failed: int = 0
    total: int = 0


class ConditionStatus(StateCounts):
    """A condition's counts and, once scored, its live exact match and abstain rate."""

    scored: int | None = None
    em: float | None = None
    abstain_rate: float | None = None


class TrialStatus(_Status):
    conditions: dict[str, ConditionStatus] = {}
    export: str | None = None
    analysis: str | None = None
    analysis_error: str | None = None


class RecentError(_Status):
    custom_id: str
    error: str | None = None


class WorkerStatus(_Status):
    pid: int
    role: str
    heartbeat_age_s: float
    host: str | None = None


class QueueDepth(_Status):
    queued_messages: int | None = None
    scheduled_messages: int | None = None


class RunStatus(_Status):
    """Where a run stands: counts per trial and condition, rate, ETA, failures, workers, queue depth."""

    run_id: str
    state: str
    stalled_since: float | None = None
    stop_requested: bool = False
    stop_reason: str | None = None
    engine: str
    created_at: float
    totals: StateCounts
    requests_per_min: float
    eta_s: float | None = None
    trials: dict[str, TrialStatus] = {}
    recent_errors: list[RecentError] = []
    workers: list[WorkerStatus] = []
    queue: QueueDepth
    run_dir: str
    fireworks_jobs: list[dict[str, Any]] = []

    @property
    def stalled(self) -> bool:
        return self.stalled_since is not None

    def to_json(self) -> dict[str, Any]:
        """The ``status --json`` object (docs/queue.md): the same keys, in the same order, as before."""
        return self.model_dump(mode="json", exclude_unset=True)
