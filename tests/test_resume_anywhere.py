"""A resume typed as the tool prints it works from any folder, with the run's own recorded settings,
and checks the engine before it sends anything again. Real CLI subprocesses, real SQLite, a real
closed port on 127.0.0.1 for an engine that is down."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.cli import run_cli
from tests.support.workdirs import make_workdir


def _cli(args: list[str], queue: Path, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return run_cli(args, cwd=cwd, queue=queue, timeout=timeout)


def _as_typed(printed: str) -> list[str]:
    """The printed ``python -m producer ...`` command, run with this interpreter."""
    words = printed.split()
    assert words[:3] == ["python", "-m", "producer"], printed
    return words[3:]


def _relative_config(work: Path, **extra) -> str:
    """A config as a user writes it: every path relative to the project folder ``work``."""
    cfg = {"backend": "local", "local_engine": "dry_run", "sizes": {"squad_v2": 2, "triviaqa": 1, "nq_open": 1},
           "stats": {"bootstrap_samples": 100, "permutation_samples": 100}, "enable_local_telemetry": False,
           "prevent_sleep": False, **extra}
    (work / "my.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return "my.yaml"


def _ledger_counts(queue: Path, run_id: str) -> tuple[int, int]:
    """(failed requests, attempts made) of a run."""
    conn = sqlite3.connect(queue / "ledger.sqlite3")
    try:
        row = conn.execute("select sum(state = 'failed'), coalesce(sum(attempts), 0) from requests"
                           " where run_id = ?", (run_id,)).fetchone()
        return int(row[0] or 0), int(row[1])
    finally:
        conn.close()


def test_printed_resume_command_works_from_another_folder(tmp_path):
    work, queue = make_workdir(tmp_path), tmp_path / "queue"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = _cli(["enqueue", "--config", _relative_config(work)], queue, work)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = out.stdout.split()[1]
    out = _cli(["stop"], queue, work)
    assert out.returncode == 0, out.stdout + out.stderr
    printed = out.stdout.split("resume with: ", 1)[1].strip()
    out = _cli(_as_typed(printed), queue, elsewhere)  # exactly as printed, typed in another folder
    assert out.returncode == 0, out.stdout + out.stderr
    assert "done: 8 results, 0 failed" in out.stdout
    assert list((work / "experiments" / f"run_{run_id}").glob("*/reports/report.html"))  # the run's own folders
    assert sorted(p.name for p in elsewhere.iterdir()) == []  # nothing created where it was typed


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_resume_checks_the_engine_first_and_sends_nothing_while_it_is_down(tmp_path):
    work, queue = make_workdir(tmp_path), tmp_path / "queue"
    name = _relative_config(work, local_engine="openai_compat", local_model="smollm2", max_retries=1,
                            local_endpoint=f"http://127.0.0.1:{_closed_port()}/v1")
    out = _cli(["enqueue", "--config", name, "--no-preflight"], queue, work)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = out.stdout.split()[1]
    out = _cli(["run", "--resume", run_id, "-w", "1"], queue, work)
    assert out.returncode == 1, out.stdout + out.stderr
    line = out.stderr.strip()
    assert line.startswith("error: preflight failed: engine: cannot reach") and "\n" not in line, out.stderr
    assert "Traceback" not in out.stderr
    assert _ledger_counts(queue, run_id) == (0, 0)  # not one request was sent to the dead engine


def _project_queue_and_another_folder(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """The project's own queue holding run r1, and the working folder moved elsewhere (no queue there)."""
    from producer.host import queue_paths
    from producer.ledger.db import close_all, connect

    project_queue = tmp_path / "project" / "queue"
    project_queue.mkdir(parents=True)
    conn = connect(project_queue / "ledger.sqlite3")
    conn.execute("insert into runs (run_id, config_json, fingerprint, engine, experiments_dir, prepared_dir,"
                 " created_at, updated_at) values ('r1', '{}', 'fp', 'dry_run', 'x', 'y', 0, 0)")
    close_all()
    monkeypatch.setattr(queue_paths, "PROJECT_QUEUE_DIR", project_queue)
    monkeypatch.delenv(queue_paths.ENV_QUEUE_DIR, raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return project_queue, elsewhere


@pytest.mark.unit
def test_resume_finds_the_project_queue_when_typed_in_another_folder(tmp_path, monkeypatch):
    from producer.host import queue_paths
    from producer.ledger.locate import find_run_queue

    project_queue, elsewhere = _project_queue_and_another_folder(tmp_path, monkeypatch)
    assert find_run_queue("nope") is None
    assert not (elsewhere / "queue").exists()  # looking creates nothing
    assert find_run_queue("r1") == project_queue.resolve()
    assert queue_paths.queue_dir() == project_queue.resolve()  # pinned: the pool's workers use it too
    monkeypatch.delenv(queue_paths.ENV_QUEUE_DIR)


@pytest.mark.unit
def test_status_of_a_run_finds_its_queue_from_another_folder(tmp_path, monkeypatch):
    """``status --run-id X`` typed where ``run --resume X`` works (issue 30, item 7): it said "no ledger"."""
    from click.testing import CliRunner

    from producer.cli.cmd_status import status
    from producer.host import queue_paths
    from producer.ledger.db import close_all

    _project_queue_and_another_folder(tmp_path, monkeypatch)
    try:
        out = CliRunner().invoke(status, ["--run-id", "r1", "--json"])
    finally:
        monkeypatch.delenv(queue_paths.ENV_QUEUE_DIR, raising=False)
        close_all()
    assert out.exit_code == 0, out.output
    assert '"run_id": "r1"' in out.output
