"""Where the durable queue lives: ``<cwd>/queue/`` unless ``EXCELLENCE_QUEUE_DIR`` says otherwise.

Why: the producer, ``huey_consumer`` and every spawned worker must open the very same SQLite files.
``queue/`` is a plain folder, never a Python package (ARCHITECTURE fact 1).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_QUEUE_DIR = "EXCELLENCE_QUEUE_DIR"
HUEY_DB = "huey.sqlite3"
LEDGER_DB = "ledger.sqlite3"
MODEL_LOCK = "model.lock"


def queue_dir(create: bool = True) -> Path:
    """The queue folder (absolute), created on first use."""
    raw = os.environ.get(ENV_QUEUE_DIR)
    path = Path(raw) if raw else Path.cwd() / "queue"
    path = path.resolve()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def pin_queue_dir() -> Path:
    """Write the resolved folder into the environment so child processes (spawn) use the same one."""
    path = queue_dir()
    os.environ[ENV_QUEUE_DIR] = str(path)
    return path


def ledger_path(create: bool = True) -> Path:
    return queue_dir(create) / LEDGER_DB


def huey_path() -> Path:
    return queue_dir() / HUEY_DB


def model_lock_path() -> Path:
    return queue_dir() / MODEL_LOCK
