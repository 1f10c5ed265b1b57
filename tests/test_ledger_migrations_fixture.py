"""A queue written before the ledger migrations, killed mid-run, is upgraded and resumed: one result per request.

The fixture (tests/fixtures/ledger_v1, made by main b0d73f7 with its own code) holds a real ledger at
``meta.schema_version`` 1 without ``fireworks_parts.deadline_at``, 6 of 20 requests done, 4 claimed
by a dead worker, 10 queued, and the Huey message of the waiting chunk. Real CLI subprocess, real
SQLite, the dry_run engine.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter
from pathlib import Path

from config.contract import RAW_RESULTS_JSONL
from producer.ledger.db import MIGRATIONS
from tests.support.cli import run_cli
from tests.support.paths import ROOT
from tests.support.queue_runs import read_jsonl

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ledger_v1" / "proj"
RUN_ID = "v1fixture"
TEXT_SUFFIXES = {".json", ".jsonl", ".yaml", ".csv", ".txt", ".md", ".html"}


def _placed(tmp_path: Path) -> Path:
    """The fixture copied to ``tmp_path/proj`` with its recorded absolute paths pointing there."""
    proj = tmp_path / "proj"
    shutil.copytree(FIXTURE, proj)
    here, repo = proj.as_posix(), ROOT.as_posix()
    for path in proj.rglob("*"):
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            text = path.read_text(encoding="utf-8")
            path.write_text(text.replace("@FIXTURE@", here).replace("@REPO@", repo), encoding="utf-8")
    conn = sqlite3.connect(proj / "queue" / "ledger.sqlite3")
    try:
        for col in ("config_path", "config_json", "experiments_dir", "prepared_dir"):
            conn.execute(f"update runs set {col} = replace({col}, '@FIXTURE@', ?)", (here,))
        conn.commit()
    finally:
        conn.close()
    return proj


def _query(ledger: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(ledger)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_the_fixture_is_an_old_ledger_killed_mid_run() -> None:
    ledger = FIXTURE / "queue" / "ledger.sqlite3"
    tables = {r[0] for r in _query(ledger, "select name from sqlite_master where type = 'table'")}
    assert "_migrations" not in tables and "fireworks_parts" in tables
    assert _query(ledger, "select value from meta where key = 'schema_version'") == [("1",)]
    assert "deadline_at" not in {r[1] for r in _query(ledger, "pragma table_info(fireworks_parts)")}
    states = dict(_query(ledger, "select state, count(*) from requests group by state"))
    assert states["done"] > 0 and states.get("running", 0) + states.get("queued", 0) > 0, states


def test_an_old_queue_killed_mid_run_is_upgraded_and_resumed_with_one_result_per_request(tmp_path) -> None:
    proj = _placed(tmp_path)
    ledger = proj / "queue" / "ledger.sqlite3"
    before = dict(_query(ledger, "select custom_id, created_at from results"))
    out = run_cli(["run", "--resume", RUN_ID, "--workers", "1"], cwd=tmp_path, queue=proj / "queue")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "done: 20 results, 0 failed" in out.stdout, out.stdout

    names = [r[0] for r in _query(ledger, "select name from _migrations order by rowid")]
    assert names == [m.name for m in MIGRATIONS]  # every one, in order (0004: the Anthropic provider's tables)
    assert _query(ledger, "select value from meta where key = 'schema_version'") == [(str(len(MIGRATIONS)),)]
    assert "in_flight" in {r[1] for r in _query(ledger, "pragma table_info(requests)")}
    assert "deadline_at" in {r[1] for r in _query(ledger, "pragma table_info(fireworks_parts)")}

    expected = sorted(r[0] for r in _query(ledger, f"select custom_id from requests where run_id = '{RUN_ID}'"))
    assert len(expected) == 20
    assert _query(ledger, "select state, count(*) from requests group by state") == [("done", 20)]
    results = Counter(r[0] for r in _query(ledger, f"select custom_id from results where run_id = '{RUN_ID}'"))
    assert sorted(results) == expected and set(results.values()) == {1}
    after = dict(_query(ledger, "select custom_id, created_at from results"))
    assert {k: after[k] for k in before} == before  # the results from before the kill were kept, not redone

    (raw,) = (proj / "experiments" / f"run_{RUN_ID}").glob(f"*/results/{RAW_RESULTS_JSONL}")
    lines = Counter(row["custom_id"] for row in read_jsonl(raw))
    assert sorted(lines) == expected and set(lines.values()) == {1}


def test_a_queue_from_a_newer_version_is_refused_in_one_line(tmp_path) -> None:
    proj = _placed(tmp_path)
    ledger = proj / "queue" / "ledger.sqlite3"
    conn = sqlite3.connect(ledger)
    try:
        conn.execute("create table _migrations (name text primary key, applied_at real not null)")
        conn.execute("insert into _migrations values ('0001_initial_schema', 0), ('9999_from_the_future', 0)")
        conn.commit()
    finally:
        conn.close()
    out = run_cli(["run", "--resume", RUN_ID, "--workers", "1"], cwd=tmp_path, queue=proj / "queue")
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    line = out.stderr.strip()
    assert "\n" not in line and "newer version" in line and "9999_from_the_future" in line, line
    assert _query(ledger, "select count(*) from results") == [(6,)]  # nothing was touched
