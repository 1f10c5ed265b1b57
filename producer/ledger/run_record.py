"""A run's record in the ledger as both sides use it: its frozen settings and its stop flag.

Why here: the producer (resume, ``stop``) and the workers (engine down, Fireworks deadline) both read
the run's config snapshot and raise or clear its stop flag; living below both packages, these two
functions keep producer and workers from importing each other (docs/architecture.md, "Walls").
"""

from __future__ import annotations

import json
import sqlite3
from functools import lru_cache
from pathlib import Path

from config.schema import EvalConfig, validate_config_dict
from producer.ledger.db import connect
from producer.ledger.queries import get_run
from producer.ledger.writes import set_stop
from producer.runs.layout import RunLayout
from producer.runs.manifests import set_stop_flag


def run_config(conn: sqlite3.Connection, run_id: str) -> tuple[EvalConfig, str] | None:
    """The run's config snapshot (frozen at enqueue, absolute paths) and engine name; None for an
    unknown run. The one place that turns ``runs.config_json`` back into an EvalConfig; raises
    ConfigError/ValueError when the recorded settings no longer validate."""
    row = get_run(conn, run_id)
    if row is None:
        return None
    cfg = validate_config_dict(json.loads(row["config_json"]), f"run {run_id}", check_files=False)
    return cfg, str(row["engine"])


@lru_cache(maxsize=16)
def run_settings(run_id: str) -> tuple[EvalConfig, str]:
    """``run_config`` cached per process for the workers (they never read config files)."""
    found = run_config(connect(), run_id)
    if found is None:
        raise KeyError(f"unknown run {run_id}")
    return found


def set_run_stop(conn: sqlite3.Connection, run_id: str, stop: bool, reason: str | None = None) -> None:
    """Raise or clear a run's stop flag in the ledger (``reason``: why it stopped by itself) and mirror it
    into run_state.json (docs/contract.md section 9) for readers of the run folder."""
    set_stop(conn, run_id, stop, reason=reason)
    run = get_run(conn, run_id)
    layout = RunLayout(Path(run["experiments_dir"]), run_id) if run is not None else None
    if layout is not None and layout.run_state.exists():
        set_stop_flag(layout, stop)
