"""The migrations runner (producer/ledger/migrations.py): each named step runs once per file, in order,
old files are adopted, newer ones refused, concurrent openers are safe. Real SQLite files; the
concurrency test opens one file from several real processes at once."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from producer.host.queue_paths import QueueError
from producer.ledger import db
from producer.ledger.migrations import Migration, NewerSchemaError, applied_names, migrate, run_sql
from producer.ledger.response_cache import CACHE_DDL, cache_close_all, cache_connect, put_response
from tests.support.cli import PY_FLAGS, cli_env

V1_LEDGER = Path(__file__).resolve().parent / "fixtures" / "ledger_v1" / "proj" / "queue" / "ledger.sqlite3"
ALL = ["0001_initial_schema", "0002_fireworks_parts_deadline_at", "0003_in_flight_and_worker_parent",
       "0004_anthropic_ids_and_batches"]
VERSION = str(len(ALL))


@pytest.fixture(autouse=True)
def _closed():
    yield
    db.close_all()
    cache_close_all()


def _plain(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"pragma table_info({table})")}


def _version(conn: sqlite3.Connection) -> str:
    return conn.execute("select value from meta where key = 'schema_version'").fetchone()[0]


def _recorded(path: Path) -> list[tuple[str, float]]:
    with _plain(path) as conn:
        return conn.execute("select name, applied_at from _migrations order by rowid").fetchall()


def test_a_new_ledger_gets_every_migration_in_order(tmp_path) -> None:
    conn = db.connect(tmp_path / "ledger.sqlite3")
    assert applied_names(conn) == ALL == [m.name for m in db.MIGRATIONS]
    assert "deadline_at" in _columns(conn, "fireworks_parts")
    assert "in_flight" in _columns(conn, "requests") and "parent" in _columns(conn, "workers")
    assert _version(conn) == VERSION


def test_opening_again_runs_nothing_again(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite3"
    db.connect(path)
    first = _recorded(path)
    db.close_all()  # a new process would start from here
    db.connect(path)
    assert _recorded(path) == first


def test_a_v1_ledger_with_the_deadline_column_is_adopted_without_running_anything(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite3"
    shutil.copy(V1_LEDGER, path)
    with _plain(path) as old:  # a v1 ledger opened by a version that had ADDED_COLUMNS
        old.execute("alter table fireworks_parts add column deadline_at real")
    conn = db.connect(path)  # re-running 0002 would fail: "duplicate column name"
    assert applied_names(conn) == ALL and _version(conn) == VERSION
    assert conn.execute("select count(*) from results").fetchone()[0] == 6


def test_a_v1_ledger_without_the_deadline_column_gets_it(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite3"
    shutil.copy(V1_LEDGER, path)
    conn = db.connect(path)
    assert applied_names(conn) == ALL and "deadline_at" in _columns(conn, "fireworks_parts")
    assert conn.execute("select count(*) from requests").fetchone()[0] == 20


def test_a_v1_ledger_missing_a_table_gets_the_initial_schema_run_again(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with _plain(path) as old:  # written before fireworks_parts existed
        old.execute("create table meta (key text primary key, value text not null)")
        old.execute("insert into meta values ('schema_version', '1')")
        old.execute("create table stop_reasons (run_id text primary key, reason text not null, at real not null)")
        old.execute("insert into stop_reasons values ('r', 'engine down', 1.0)")
    conn = db.connect(path)
    assert applied_names(conn) == ALL and "deadline_at" in _columns(conn, "fireworks_parts")
    assert conn.execute("select reason from stop_reasons").fetchone()[0] == "engine down"


def test_a_step_added_later_runs_once_on_a_file_that_has_the_others(tmp_path) -> None:
    path = tmp_path / "x.sqlite3"
    calls: list[str] = []
    first = [Migration("0001_initial_schema", run_sql("create table meta (key text primary key, value text not null)",
                                                      "create table t (a integer)"))]

    def add_b(conn: sqlite3.Connection) -> None:
        calls.append("b")
        conn.execute("alter table t add column b text")

    later = [*first, Migration("0002_t_b", add_b)]
    conn = _plain(path)
    assert migrate(conn, first, path) == ["0001_initial_schema"]
    assert migrate(conn, later, path) == ["0002_t_b"]
    assert migrate(conn, later, path) == []
    assert calls == ["b"] and _columns(conn, "t") == {"a", "b"} and _version(conn) == "2"
    conn.close()


def test_a_failing_step_leaves_the_file_as_it_was_before_that_step(tmp_path) -> None:
    path = tmp_path / "x.sqlite3"

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("create table half (a integer)")
        raise sqlite3.OperationalError("disk I/O error")

    steps = [Migration("0001_initial_schema", run_sql("create table meta (key text primary key, value text not null)")),
             Migration("0002_broken", broken)]
    conn = _plain(path)
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, steps, path)
    assert applied_names(conn) == ["0001_initial_schema"]
    assert conn.execute("select count(*) from sqlite_master where name = 'half'").fetchone()[0] == 0
    conn.close()


def test_a_ledger_from_a_newer_version_is_refused_in_one_line(tmp_path) -> None:
    path = tmp_path / "ledger.sqlite3"
    db.connect(path)
    db.close_all()
    with _plain(path) as conn:
        conn.execute("insert into _migrations values ('0003_from_the_future', 0)")
    with pytest.raises(QueueError) as err:
        db.connect(path)
    assert isinstance(err.value, NewerSchemaError)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "0003_from_the_future" in msg and "newer version" in msg


# Each process waits for the go file, then opens the ledger (its migrations run at open) and prints
# the names the file then records.
OPENER = """
import sys, time
from pathlib import Path
from producer.ledger.db import MIGRATIONS, connect
from producer.ledger.migrations import applied_names
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
conn = connect(Path(sys.argv[1]))
print(",".join(applied_names(conn)))
"""


@pytest.mark.parametrize("start", ["new", "v1"])
def test_processes_opening_one_ledger_at_once_apply_each_step_once(tmp_path, start) -> None:
    path, go = tmp_path / "ledger.sqlite3", tmp_path / "go"
    if start == "v1":
        shutil.copy(V1_LEDGER, path)
    procs = [subprocess.Popen([sys.executable, *PY_FLAGS, "-c", OPENER, str(path), str(go)], env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
             for _ in range(4)]
    time.sleep(1.0)  # let them import and wait at the go file
    go.write_text("go", encoding="utf-8")
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == ",".join(ALL)
    assert [name for name, _ in _recorded(path)] == ALL
    with _plain(path) as conn:
        assert _version(conn) == VERSION and "deadline_at" in _columns(conn, "fireworks_parts")


def test_an_old_response_cache_is_adopted_and_keeps_its_answers(tmp_path) -> None:
    path = tmp_path / "response_cache.sqlite3"
    with _plain(path) as old:  # as CACHE_SCHEMA_VERSION 1 wrote it
        for sql in CACHE_DDL:
            old.execute(sql)
        old.execute("insert into meta values ('schema_version', '1')")
        old.execute("insert into responses (key, engine, model, model_id, result, created_at) values"
                    " ('k', 'dry_run', 'm', 'id', '{}', 0)")
    conn = cache_connect(path)
    assert applied_names(conn) == ["0001_initial_schema"] and _version(conn) == "1"
    assert not put_response(conn, "k", "dry_run", "m", "id", "{}")  # the old entry is still there
    assert put_response(conn, "k2", "dry_run", "m", "id", "{}")
