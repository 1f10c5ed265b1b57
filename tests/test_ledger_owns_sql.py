"""The ledger package owns every table, migration, query and write: no SQL text anywhere else.

Why a scan: a statement written next to the ledger's own (a second ``insert into results``, a copy of
a table's DDL) is how a state change ends up written twice and a schema defined in four places.
Tests and tools may run SQL; product code asks ``producer.ledger`` by name.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3

import pytest

from producer.ledger.telemetry import SAMPLE_FIELDS
from telemetry.sampler import Sample
from tests.support.paths import ROOT

pytestmark = pytest.mark.unit

PACKAGES = ("config", "producer", "workers", "scoring", "telemetry")
LEDGER = "producer/ledger/"
SQL = re.compile(
    r"\bcreate\s+(?:table|(?:unique\s+)?index)\b|\binsert\s+(?:or\s+\w+\s+)?into\b|\bselect\b[^\n]{0,200}?\bfrom\b"
    r"|\bupdate\s+\w+\s+set\b|\bdelete\s+from\b|\balter\s+table\b|\bpragma\b|\.execute(?:many|script)?\(",
    re.IGNORECASE,
)
# Files outside the ledger allowed to match, each with its reason. Keep it short and honest: the test
# fails when a listed file no longer matches, so a fixed exception is removed here too.
EXCEPTIONS = {
    "workers/loop.py": "huey.execute(task) runs a Huey task: not SQL",
}


def sql_lines() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(LEDGER):
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if SQL.search(line):
                    found.setdefault(rel, []).append(f"{n}: {line.strip()}")
    return found


def test_no_sql_text_outside_the_ledger_package() -> None:
    found = sql_lines()
    unexpected = {rel: lines for rel, lines in found.items() if rel not in EXCEPTIONS}
    assert not unexpected, f"SQL outside producer/ledger/ (add a named function there): {unexpected}"
    stale = sorted(set(EXCEPTIONS) - set(found))
    assert not stale, f"no SQL left in {stale}: remove them from EXCEPTIONS"


def test_the_scan_sees_sql_in_every_spelling() -> None:
    for text in ("conn.execute(sql)", "cur.executemany(q, rows)", "CREATE TABLE t (a)", "insert or ignore into t",
                 'f"SELECT {cols} FROM {TABLE}"', "update runs set state = 'x'", "delete from t", "PRAGMA x",
                 "alter table t add column c", "create index if not exists i on t (a)"):
        assert SQL.search(text), text
    for prose in ("an update sets the flag", "insert the key into the dict", "select a model"):
        assert not SQL.search(prose), prose


def test_every_table_is_created_in_the_ledger_package() -> None:
    create = re.compile(r"\bcreate\s+table\b", re.IGNORECASE)
    where = sorted(p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                   if create.search(p.read_text(encoding="utf-8")))
    # the ledger's schema (its migrations), the table that records applied migrations, the telemetry
    # samples table (its own short connections) and the response cache (its own file)
    assert where == ["producer/ledger/db.py", "producer/ledger/migrations.py", "producer/ledger/response_cache.py",
                     "producer/ledger/telemetry.py"], where


def test_telemetry_columns_are_the_sample_fields() -> None:
    assert SAMPLE_FIELDS == tuple(f.name for f in dataclasses.fields(Sample))


def test_an_older_ledger_gets_the_fireworks_deadline_column_in_place(tmp_path) -> None:
    from producer.ledger import fireworks as fw_ledger
    from producer.ledger.db import close_all, connect

    path = tmp_path / "ledger.sqlite3"
    old = sqlite3.connect(path)  # a ledger written before deadline_at existed, with one part in it
    old.execute("""create table fireworks_parts (
        run_id text not null, part integer not null, trial text not null, model text not null,
        temp text not null, condition text not null, type text not null, params text not null,
        n_rows integer not null, input_dataset_id text not null, output_dataset_id text not null,
        job_id text not null, state text not null default 'planned', job_state text, progress text,
        error text, created_at real not null, updated_at real not null, primary key (run_id, part))""")
    old.execute("insert into fireworks_parts values ('r', 0, 't', 'm', '0.0', 'control', 'open_book', '{}', 2,"
                " 'in', 'out', 'job', 'submitted', null, null, null, 0, 0)")
    old.commit()
    old.close()
    try:
        conn = connect(path)
        fw_ledger.update_part(conn, "r", 0, deadline_at=123.0)
        part = fw_ledger.get_part(conn, "r", 0)
        assert (part["job_id"], part["state"], part["deadline_at"]) == ("job", "submitted", 123.0)
    finally:
        close_all()
