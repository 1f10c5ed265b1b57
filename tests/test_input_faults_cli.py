"""Bad inputs and a damaged queue, each through the real CLI (``python -m producer``, ``huey_consumer``):
one line on stderr naming the file and the way out, a non-zero exit status, no traceback, and nothing
half-written. Real SQLite files, real subprocesses; the read-only and full cases use the OS's own
means (chmod, or chattr when running as root; RLIMIT_FSIZE as the Linux analogue of a full disk)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.cli import run_cli
from tests.support.offline_config import offline_config_dict
from tests.support.paths import ROOT


def _cli(args: list[str], queue: Path, cwd: Path | None = None, preexec=None, exe: list[str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess:
    return run_cli(args, cwd=cwd or ROOT, queue=queue, timeout=timeout, exe=exe, preexec=preexec)


def _one_line(out: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    line = out.stderr.strip()
    assert out.returncode == code, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and line and "\n" not in line, out.stderr
    for needle in needles:
        assert needle in line, line
    return line


def _config(tmp: Path, **overrides) -> Path:
    cfg = offline_config_dict(tmp, **{"sizes": {"squad_v2": 2, "triviaqa": 1, "nq_open": 1}, **overrides})
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def _nothing_written(tmp: Path) -> None:
    assert not (tmp / "experiments").exists() and not (tmp / "data").exists()


def _read_only(path: Path) -> callable:
    """Make ``path`` read-only for this user (chattr +i as root, chmod otherwise); skip where the OS
    cannot (a Windows folder). Returns the undo."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
            pytest.skip("running as root without chattr: cannot make a read-only file")

        def undo() -> None:
            subprocess.run(["chattr", "-i", str(path)], check=False)
    else:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)

        def undo() -> None:
            path.chmod(mode)
    try:
        probe = path / ".probe" if path.is_dir() else path
        with probe.open("ab"):
            pass
    except OSError:
        return undo
    if path.is_dir():
        probe.unlink()
    undo()
    pytest.skip("this OS lets this user write a read-only folder")


def _enqueued(tmp: Path, queue: Path) -> str:
    out = _cli(["enqueue", "--config", str(_config(tmp))], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    conn = sqlite3.connect(queue / "ledger.sqlite3")
    try:
        return conn.execute("select run_id from runs").fetchone()[0]
    finally:
        conn.close()


def test_prompt_file_not_utf8_is_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "control.txt"
    bad.write_bytes("Tu es un assistant prudent. R\u00e9ponds bri\u00e8vement.".encode("cp1252"))
    cfg = _config(tmp_path, prompt_sets={"default": {
        "control": str(bad), "treatment": str(ROOT / "config" / "prompts" / "treatment_system.txt")}})
    for command in ("enqueue", "run", "plan"):
        out = _cli([command, "--config", str(cfg)], tmp_path / "queue")
        _one_line(out, 2, "prompt_sets.default.control", str(bad), "not UTF-8", "save it as UTF-8")
    _nothing_written(tmp_path)
    assert not (tmp_path / "queue").exists()


def test_experiments_dir_that_is_a_file_is_one_line_and_writes_nothing(tmp_path):
    blocker = tmp_path / "results_here"
    blocker.write_text("not a folder\n", encoding="utf-8")
    cfg = _config(tmp_path, paths={**offline_config_dict(tmp_path)["paths"], "experiments_dir": str(blocker)})
    for command in ("enqueue", "run"):
        out = _cli([command, "--config", str(cfg)], tmp_path / "queue")
        _one_line(out, 2, "paths.experiments_dir", str(blocker), "is a file, not a folder")
    assert not (tmp_path / "data").exists() and not (tmp_path / "queue" / "ledger.sqlite3").exists()


def test_queue_path_that_is_a_file_is_one_line_for_the_cli_and_huey_consumer(tmp_path):
    queue = tmp_path / "queue"
    queue.write_text("", encoding="utf-8")
    out = _cli(["enqueue", "--config", str(_config(tmp_path))], queue)
    _one_line(out, 2, f"queue folder {queue} is a file", "EXCELLENCE_QUEUE_DIR")
    _nothing_written(tmp_path)
    consumer = Path(sys.executable).with_name("huey_consumer" + (".exe" if os.name == "nt" else ""))
    if not consumer.exists():
        consumer = Path(sys.executable).parent / "huey_consumer"
    out = _cli(["producer.huey", "-w", "1"], queue, exe=[str(consumer)], timeout=60)
    _one_line(out, 2, f"queue folder {queue} is a file")  # at import of producer.huey


def test_read_only_queue_folder_is_one_line(tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir()
    undo = _read_only(queue)
    try:
        out = _cli(["enqueue", "--config", str(_config(tmp_path))], queue)
    finally:
        undo()
    _one_line(out, 2, str(queue), "writable", "EXCELLENCE_QUEUE_DIR")
    _nothing_written(tmp_path)


def test_read_only_ledger_is_one_line(tmp_path):
    queue = tmp_path / "queue"
    run_id = _enqueued(tmp_path, queue)
    undo = _read_only(queue / "ledger.sqlite3")
    try:
        out = _cli(["run", "--resume", run_id], queue)
    finally:
        undo()
    _one_line(out, 2, str(queue / "ledger.sqlite3"), "read-only", "writable")


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX; Windows has no per-process file size limit")
def test_full_queue_folder_is_one_line(tmp_path):
    import resource

    def small_files() -> None:  # every file this process writes stops at 40 kB: a full disk, as SQLite sees it
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    queue = tmp_path / "queue"
    out = _cli(["enqueue", "--config", str(_config(tmp_path))], queue, preexec=small_files)
    _one_line(out, 2, str(queue), "disk is full", "free space")
    assert not (tmp_path / "experiments").exists()


def test_garbage_ledger_is_one_line(tmp_path):
    queue = tmp_path / "queue"
    queue.mkdir()
    (queue / "ledger.sqlite3").write_bytes(os.urandom(8192))
    for args in (["enqueue", "--config", str(_config(tmp_path))], ["status"], ["run", "--resume", "20260101-000000-abcdef"]):
        out = _cli(args, queue)
        _one_line(out, 2, str(queue / "ledger.sqlite3"), "not a SQLite database", "move it away")
    _nothing_written(tmp_path)


def test_truncated_ledger_is_one_line(tmp_path):
    queue = tmp_path / "queue"
    _enqueued(tmp_path, queue)
    conn = sqlite3.connect(queue / "ledger.sqlite3", isolation_level=None)  # all in the main file, then cut it
    conn.execute("pragma wal_checkpoint(truncate)").fetchall()
    conn.execute("pragma journal_mode=delete").fetchall()
    conn.close()
    ledger = queue / "ledger.sqlite3"
    with ledger.open("r+b") as fh:
        fh.truncate(8192)
    for args in (["status"], ["enqueue", "--config", str(_config(tmp_path))]):
        out = _cli(args, queue)
        _one_line(out, 2, str(ledger), "damaged", "move it away")


def test_garbage_huey_db_is_one_line_and_deleting_it_is_the_way_out(tmp_path):
    queue = tmp_path / "queue"
    run_id = _enqueued(tmp_path, queue)
    for name in ("huey.sqlite3-wal", "huey.sqlite3-shm"):
        (queue / name).unlink(missing_ok=True)
    (queue / "huey.sqlite3").write_bytes(os.urandom(8192))
    out = _cli(["run", "--resume", run_id, "-w", "1"], queue)
    _one_line(out, 2, str(queue / "huey.sqlite3"), "delete it", "rebuilds them from the ledger")
    (queue / "huey.sqlite3").unlink()
    out = _cli(["run", "--resume", run_id, "-w", "1"], queue, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "done: 8 results, 0 failed" in out.stdout


def test_empty_dataset_file_is_refused(tmp_path):
    empty_jsonl = tmp_path / "nq_empty.jsonl"
    empty_jsonl.write_text("\n", encoding="utf-8")
    empty_squad = tmp_path / "squad_empty.json"
    empty_squad.write_text('{"version": "v2.0", "data": []}', encoding="utf-8")
    blank_json = tmp_path / "trivia_blank.json"
    blank_json.write_text("", encoding="utf-8")
    cases = [("nq_open", empty_jsonl, "holds no items"), ("squad_v2", empty_squad, "holds no items"),
             ("triviaqa", blank_json, "is empty")]
    for dataset, path, words in cases:
        for command in ("prepare", "plan"):
            out = _cli([command, "--config", str(_config(tmp_path)), "--data", f"{dataset}={path}"], tmp_path / "queue")
            _one_line(out, 2, dataset, str(path), words)
    assert not (tmp_path / "experiments").exists()


def test_all_sizes_zero_is_refused(tmp_path):
    cfg = _config(tmp_path, sizes={"squad_v2": 0, "triviaqa": 0, "nq_open": 0})
    _one_line(_cli(["plan", "--config", str(cfg)], tmp_path / "queue"), 2, "sizes:", "every dataset has size 0")
    cfg = _config(tmp_path)
    for command in ("plan", "prepare", "enqueue"):
        out = _cli([command, "--config", str(cfg), "--limit-items", "0"], tmp_path / "queue")
        _one_line(out, 2, "nothing to evaluate", "size 0")
    _nothing_written(tmp_path)
