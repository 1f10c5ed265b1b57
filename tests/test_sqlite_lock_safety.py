"""The queue's file checks must never drop SQLite's own locks.

Why: on POSIX, closing any handle to a file releases every lock the process holds on it, SQLite's too.
Reading a database's header with ``open()`` while a connection of the same process holds a lock lets
another process write at the same time, which corrupted ``huey.sqlite3`` in the crash drill.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from producer.host.queue_paths import check_sqlite_file

TRY_WRITE = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=0.2)
try:
    con.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as exc:
    print("locked" if "locked" in str(exc) else f"error {exc}")
else:
    print("acquired")
"""


def _other_process_write(path: Path) -> str:
    out = subprocess.run([sys.executable, "-c", TRY_WRITE, str(path)], capture_output=True, text=True,
                         encoding="utf-8", timeout=60)
    return out.stdout.strip()


def test_checking_a_database_this_process_has_open_keeps_its_locks(tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite3"
    check_sqlite_file(db, "delete it")  # first check: the file does not exist yet
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("CREATE TABLE t (x)")
    con.execute("BEGIN IMMEDIATE")  # this process now holds the write lock
    con.execute("INSERT INTO t VALUES (1)")
    assert _other_process_write(db) == "locked"
    for _ in range(3):  # what status polling and per-thread connections do
        check_sqlite_file(db, "delete it")
    assert _other_process_write(db) == "locked", "the check released this process's SQLite lock"
    con.execute("COMMIT")
    assert _other_process_write(db) == "acquired"


@pytest.mark.unit
def test_a_garbage_file_is_still_refused_on_the_first_check(tmp_path: Path) -> None:
    import pytest

    from producer.host.queue_paths import QueueError

    db = tmp_path / "huey.sqlite3"
    db.write_bytes(b"\0" * 4096)
    with pytest.raises(QueueError, match="not a SQLite database"):
        check_sqlite_file(db, "delete it")
