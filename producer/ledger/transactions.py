"""The one way the ledger package writes: a short ``begin immediate`` transaction.

Why its own module: the connections (``db``) and the migrations runner (``migrations``, which ``db``
runs at open) both need it; here neither imports the other for it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A short write transaction (``begin immediate``: takes the write lock up front, no deadlock)."""
    conn.execute("begin immediate")
    try:
        yield conn
    except BaseException:
        conn.execute("rollback")
        raise
    else:
        conn.execute("commit")
