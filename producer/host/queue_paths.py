"""Where the durable queue lives: ``<cwd>/queue/`` unless ``EXCELLENCE_QUEUE_DIR`` says otherwise.

Why: the producer, ``huey_consumer`` and every spawned worker must open the very same SQLite files.
``queue/`` is a plain folder, never a Python package (docs/architecture.md fact 1). A queue path that is a
file, a folder that cannot be created or a database file that is not SQLite is one line naming the
path and the way out (``QueueError``), raised before anything is written, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from producer.host.console import UserError

ENV_QUEUE_DIR = "EXCELLENCE_QUEUE_DIR"
HUEY_DB = "huey.sqlite3"
LEDGER_DB = "ledger.sqlite3"
MODEL_LOCK = "model.lock"
RESPONSE_CACHE_DB = "response_cache.sqlite3"  # opt-in (config ``cache: true``): answers of repeated requests
STEP_COSTS_FILE = "step_costs.json"  # ``plan --measure``: the batched engine's step costs per model file and machine
SQLITE_HEADER = b"SQLite format 3\x00"
# The project's own queue folder: where a printed `run --resume` finds its run when typed elsewhere.
PROJECT_QUEUE_DIR = Path(__file__).resolve().parents[2] / "queue"
HUEY_WAY_OUT = "delete it: it only carries messages, and `python -m producer run --resume RUN_ID` rebuilds them from the ledger"
CACHE_WAY_OUT = ("delete it (`python -m producer cache clear --yes`, or remove the file): it only holds answers "
                 "that later runs can reuse, never a run's own results")
LEDGER_WAY_OUT = ("move it away (it holds the runs' progress; results already exported stay in experiments/), "
                  "or restore a copy")


class QueueError(UserError):
    """The queue folder or one of its databases cannot be used; the message names it and the fix."""


def queue_dir(create: bool = True) -> Path:
    """The queue folder (absolute), created on first use."""
    raw = os.environ.get(ENV_QUEUE_DIR)
    path = Path(raw) if raw else Path.cwd() / "queue"
    path = path.resolve()
    if create:
        how = f"set {ENV_QUEUE_DIR} to a folder" if not raw else f"point {ENV_QUEUE_DIR} at a folder"
        if path.exists() and not path.is_dir():
            raise QueueError(f"queue folder {path} is a file, not a folder: move the file away, or {how}")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise QueueError(f"cannot create the queue folder {path}: {exc.strerror or exc}: {how} "
                             "you can write to") from None
    return path


def pin_queue_dir() -> Path:
    """Write the resolved folder into the environment so child processes (spawn) use the same one."""
    path = queue_dir()
    os.environ[ENV_QUEUE_DIR] = str(path)
    return path


_CHECKED: set[tuple[int, str]] = set()  # (pid, path) already checked in this process


def check_sqlite_file(path: Path, way_out: str) -> Path:
    """A database file that exists must start with SQLite's header (a garbage or zeroed file does not).

    Why once per process: on POSIX, closing *any* handle to a file drops every lock this process holds
    on it, including SQLite's own locks from open connections: re-reading the header while a connection
    is open can corrupt the database (it did, in the crash drill). The first check in a process runs
    before that process opens the file with SQLite; a file that does not exist yet is created by SQLite
    in this process, so it is not read again either.
    """
    key = (os.getpid(), str(path))
    if key in _CHECKED:
        return path
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        _CHECKED.add(key)
        return path
    except IsADirectoryError:
        raise QueueError(f"{path} is a folder, not a database: move it away") from None
    except OSError as exc:
        raise QueueError(f"cannot read {path}: {exc.strerror or exc}: make it readable and writable") from None
    if head and head != SQLITE_HEADER:
        raise QueueError(f"{path} is not a SQLite database (damaged or overwritten): {way_out}")
    _CHECKED.add(key)
    return path


def describe_sqlite_error(exc: sqlite3.Error, path: Path, way_out: str) -> str:
    """One line for a SQLite error on ``path`` (a database file or the queue folder): what is wrong
    and what to do."""
    text = " ".join(str(exc).split())
    low = text.lower()
    elsewhere = f"or set {ENV_QUEUE_DIR} to another folder"
    if "readonly" in low or "read-only" in low:
        return f"{path} is read-only ({text}): make it and the queue folder writable, {elsewhere}"
    if "unable to open" in low:
        return f"cannot open {path} ({text}): the queue folder must be writable, {elsewhere}"
    if "full" in low or "disk i/o" in low:
        return (f"cannot write {path} ({text}): the disk is full or failing: free space on that drive, "
                f"{elsewhere} on another drive")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return f"{path} is damaged ({text}): {way_out}"
    return f"{path}: {text}"


@contextlib.contextmanager
def queue_errors() -> Iterator[None]:
    """A SQLite error while the producer writes the queue (a disk filling mid-enqueue): one line."""
    try:
        yield
    except sqlite3.Error as exc:
        raise QueueError(describe_sqlite_error(exc, queue_dir(create=False), LEDGER_WAY_OUT)) from None


def ledger_path(create: bool = True) -> Path:
    return queue_dir(create) / LEDGER_DB  # checked when a connection opens (producer.ledger.db)


def huey_path() -> Path:
    return check_sqlite_file(queue_dir() / HUEY_DB, HUEY_WAY_OUT)


def response_cache_path(create: bool = True) -> Path:
    """The response cache file, next to the ledger (checked when a connection opens:
    producer.ledger.response_cache)."""
    return queue_dir(create) / RESPONSE_CACHE_DB


def model_lock_path() -> Path:
    return queue_dir() / MODEL_LOCK


def load_log_path(pid: int) -> Path:
    """What a worker's native libraries print while it loads a model (its last words if the load aborts
    the process): the pool reads it when that worker dies (workers/last_words.py)."""
    return queue_dir() / "logs" / f"worker-{pid}-load.log"
