"""Ordered, named schema migrations for the ledger and the response cache, each applied once and recorded.

Why: a queue folder outlives the code that wrote it (a run resumed after ``git pull``). Each file keeps
the names of the migrations it has had in ``_migrations`` (name, applied_at); opening it for writing
applies the missing ones in list order, each in its own ``begin immediate`` transaction that re-reads
the table first, so several worker processes opening one file at once apply every step exactly once.

A file written before this table existed (``meta.schema_version = 1``, the old single version) is
adopted: each step whose ``present`` check finds its change already there is recorded without running;
the rest run. A file that records a name this code does not know was written by a newer version: one
line (``NewerSchemaError``), never a guess. ``meta.schema_version`` stays the number of migrations
applied, for readers that look at it; ``_migrations`` is what this code trusts.

Adding a migration: docs/architecture.md, "Ledger migrations".
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from producer.host.queue_paths import ENV_QUEUE_DIR, QueueError
from producer.ledger.transactions import transaction

TABLE = "_migrations"
LEGACY_VERSION_KEY = "schema_version"  # the ``meta`` key of files written before ``_migrations``


@dataclass(frozen=True)
class Migration:
    """One step: ``apply`` runs inside the caller's transaction (DDL and data alike; no commit, no vacuum).

    ``present`` answers, for a file from before ``_migrations`` existed, whether the change is already
    there (record it, run nothing); a step added later than that never needs one."""

    name: str
    apply: Callable[[sqlite3.Connection], None]
    present: Callable[[sqlite3.Connection], bool] | None = None


class NewerSchemaError(QueueError):
    """The file was migrated by a newer version of this tool: it must not be written by this one."""


def run_sql(*statements: str) -> Callable[[sqlite3.Connection], None]:
    """A migration body that runs fixed SQL statements in order."""

    def apply(conn: sqlite3.Connection) -> None:
        for sql in statements:
            conn.execute(sql)

    return apply


def has_objects(*names: str) -> Callable[[sqlite3.Connection], bool]:
    """A ``present`` check: every named table or index exists."""

    def present(conn: sqlite3.Connection) -> bool:
        found = {r[0] for r in conn.execute("select name from sqlite_master where type in ('table', 'index')")}
        return set(names) <= found

    return present


def has_column(table: str, column: str) -> Callable[[sqlite3.Connection], bool]:
    """A ``present`` check: ``table`` has ``column``."""

    def present(conn: sqlite3.Connection) -> bool:
        return column in {r[1] for r in conn.execute(f"pragma table_info({table})")}

    return present


def applied_names(conn: sqlite3.Connection) -> list[str] | None:
    """The recorded migrations in the order applied, or None when the file has no ``_migrations`` table."""
    if conn.execute("select 1 from sqlite_master where type = 'table' and name = ?", (TABLE,)).fetchone() is None:
        return None
    return [r[0] for r in conn.execute(f"select name from {TABLE} order by rowid")]


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration], path: Path) -> list[str]:
    """Apply the migrations ``path``'s file lacks, in order; returns the names applied or adopted now.

    Cheap when nothing is missing (one read, no write lock). Raises ``NewerSchemaError`` (one line)
    when the file records a migration this code does not know."""
    names = [m.name for m in migrations]
    done = applied_names(conn)
    if done is not None:
        _refuse_newer(done, names, path)
        if set(names) <= set(done):
            return []
    changed: list[str] = []
    while True:
        with transaction(conn):  # begin immediate: one process at a time; what it read before may be stale
            conn.execute(f"create table if not exists {TABLE} (name text primary key, applied_at real not null)")
            done = applied_names(conn) or []
            _refuse_newer(done, names, path)
            if not done and _legacy_version(conn) is not None:
                done = _adopt(conn, migrations)
                changed += done
            pending = [m for m in migrations if m.name not in done]
            if not pending:
                return changed
            step = pending[0]
            step.apply(conn)
            _record(conn, step.name, len(done) + 1)
            changed.append(step.name)


def _refuse_newer(done: Sequence[str], names: Sequence[str], path: Path) -> None:
    unknown = [n for n in done if n not in names]
    if unknown:
        raise NewerSchemaError(
            f"{path} was written by a newer version of this tool (it has migration {unknown[0]!r}, unknown to this "
            f"one): update this tool (git pull) and run again, or set {ENV_QUEUE_DIR} to another folder")


def _legacy_version(conn: sqlite3.Connection) -> str | None:
    """``meta.schema_version`` of a file written before ``_migrations`` existed (None: a new file)."""
    if conn.execute("select 1 from sqlite_master where type = 'table' and name = 'meta'").fetchone() is None:
        return None
    row = conn.execute("select value from meta where key = ?", (LEGACY_VERSION_KEY,)).fetchone()
    return None if row is None else str(row[0])


def _adopt(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Record the leading steps whose change an old file already has; stop at the first it lacks."""
    adopted: list[str] = []
    for step in migrations:
        if step.present is None or not step.present(conn):
            break
        _record(conn, step.name, len(adopted) + 1)
        adopted.append(step.name)
    return adopted


def _record(conn: sqlite3.Connection, name: str, count: int) -> None:
    conn.execute(f"insert into {TABLE} (name, applied_at) values (?, ?)", (name, time.time()))
    conn.execute("insert or replace into meta (key, value) values (?, ?)", (LEGACY_VERSION_KEY, str(count)))
