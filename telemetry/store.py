"""Telemetry samples in the ledger's SQLite file (table ``telemetry_samples``), as ``Sample`` objects.

Why: the ledger is the one durable place a run writes to, and ``status`` already reads it; keeping the
samples there means no extra file to find. The table and its SQL belong to the ledger package
(``producer.ledger.telemetry``: one short connection per call, safe from the sampler thread and from
any spawned worker process); this module adds the samples' meaning: rates and the ``status`` line.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from producer.ledger.telemetry import (
    SAMPLE_FIELDS,
    TABLE,
    create_samples_table,
    insert_samples,
    latest_samples,
    read_samples,
)
from telemetry.sampler import Sample

__all__ = ["TABLE", "TelemetryStore", "current_rates", "status_line"]


class TelemetryStore:
    """Append and read samples for one ledger file. ``sink(run_id, trial)`` gives the sampler callback."""

    def __init__(self, db_path: str | Path, busy_timeout_s: float = 30.0, readonly: bool = False) -> None:
        self.db_path = Path(db_path)
        self.busy_timeout_s = busy_timeout_s
        self.readonly = readonly
        if readonly:  # status: never create or write anything
            return
        create_samples_table(self.db_path, busy_timeout_s)

    def insert_many(self, samples: Iterable[Sample], run_id: str, trial: str = "", pid: int | None = None) -> int:
        """One transaction for the whole batch; returns rows written."""
        rows = [(run_id, trial, pid, *(getattr(s, f) for f in SAMPLE_FIELDS)) for s in samples]
        if not rows:
            return 0
        insert_samples(self.db_path, self.busy_timeout_s, rows)
        return len(rows)

    def sink(self, run_id: str, trial: str = "", pid: int | None = None):
        """A callback for ``TelemetrySampler(sink=...)`` bound to one run and trial."""

        def _sink(batch: list[Sample]) -> None:
            self.insert_many(batch, run_id, trial, pid)

        return _sink

    def read(
        self, run_id: str, trial: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[Sample]:
        """Samples of a run (optionally one trial and a time window), oldest first."""
        rows = read_samples(self.db_path, self.busy_timeout_s, self.readonly, run_id, trial, since, until)
        return [Sample(*row) for row in rows]

    def latest(self, run_id: str, n: int = 40) -> list[Sample]:
        """The newest ``n`` samples of a run, oldest first (what ``status`` needs)."""
        return [Sample(*row) for row in latest_samples(self.db_path, self.busy_timeout_s, self.readonly, run_id, n)]


def current_rates(samples: list[Sample]) -> dict[str, Any]:
    """Now-figures for ``status``: completion tokens/s over the given window, last VRAM/util.

    The counters are cumulative per sampler; a drop (a restarted worker) restarts the window."""
    if not samples:
        return {"tokens_per_s": None, "gpu_mem_used_mib": None, "gpu_mem_total_mib": None, "gpu_util_pct": None}
    window = [samples[-1]]
    for s in reversed(samples[:-1]):
        if s.completion_tokens > window[0].completion_tokens:
            break
        window.insert(0, s)
    first, last = window[0], window[-1]
    dt = last.t - first.t
    tps = (last.completion_tokens - first.completion_tokens) / dt if dt > 0 else None
    return {
        "tokens_per_s": tps,
        "gpu_mem_used_mib": last.gpu_mem_used_mib,
        "gpu_mem_total_mib": last.gpu_mem_total_mib,
        "gpu_util_pct": last.gpu_util_pct,
    }


def status_line(db_path: str | Path, run_id: str, window: int = 40, now_t: float | None = None) -> str | None:
    """One line for ``producer status``: tokens/s over the last ~10 s, VRAM and utilisation now.

    None when the run has no samples (telemetry off, not started, or an old ledger)."""
    path = Path(db_path)
    if not path.exists():
        return None
    try:
        samples = TelemetryStore(path, readonly=True).latest(run_id, window)
    except sqlite3.Error:  # no samples table yet (telemetry never ran), or a locked file
        return None
    if not samples:
        return None
    now = current_rates(samples)
    parts = []
    if now["tokens_per_s"] is not None:
        parts.append(f"{now['tokens_per_s']:.1f} tokens/s")
    if now["gpu_mem_used_mib"] is not None:
        total = now["gpu_mem_total_mib"]
        parts.append(f"VRAM {now['gpu_mem_used_mib'] / 1024:.1f}"
                     + (f"/{total / 1024:.1f} GiB" if total else " GiB"))
        if now["gpu_util_pct"] is not None:
            parts.append(f"GPU {now['gpu_util_pct']:.0f}%")
    else:
        parts.append("GPU telemetry n/a")
    last = samples[-1]
    if last.rss_mib is not None:
        parts.append(f"worker RAM {last.rss_mib:.0f} MiB")
    age = time.time() - last.t if now_t is None else now_t - last.t
    head = "telemetry" if age < 15 else f"telemetry (last sample {age / 60:.0f} min ago)" if age >= 90 \
        else f"telemetry (last sample {age:.0f} s ago)"
    return f"{head}: " + ", ".join(parts)
