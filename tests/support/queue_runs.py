"""Helpers for the queue, pool, crash and parse tests: a temp queue dir, a small config, the real CLIs.

Everything runs as a user would: real subprocesses (``python -m producer``, ``python -m workers``,
``huey_consumer``), real SQLite files, the real SmolLM2 model where a model is needed. Prompt files
point at the repo's (absolute paths) so commands can run from any working directory.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.support.cli import PY_FLAGS, run_cli
from tests.support.cli import cli_env as env_for
from tests.support.offline_config import offline_config_dict
from tests.support.paths import ROOT

SHORT_PROMPTS = {
    "control": "You are a helpful assistant. Answer briefly.",
    "treatment": "You are a careful assistant. Answer briefly; if you are not sure, say \"I don't know.\"",
}


def short_prompt_set(tmp: Path) -> dict[str, str]:
    """Short system prompts: the real ones are ~1,900 tokens, which a 2-core CPU reads slowly after
    every restart of the crash tests. The queue mechanics under test do not depend on prompt length."""
    out = {}
    for cond, text in SHORT_PROMPTS.items():
        path = tmp / f"{cond}_short.txt"
        path.write_text(text + "\n", encoding="utf-8")
        out[cond] = str(path)
    return out


def write_config(tmp: Path, name: str = "cfg.yaml", short_prompts: bool = False, **overrides: Any) -> Path:
    """A small real config: bundled samples, SmolLM2 via llama.cpp, tiny outputs, quick statistics."""
    cfg = offline_config_dict(
        tmp, local_engine="llama_cpp", local_model="smollm2", n_ctx=2048, n_gpu_layers=0, n_threads=2,
        max_new_tokens={"closed_book": 8, "open_book": 8}, seed=42, sizes={"squad_v2": 2, "triviaqa": 1, "nq_open": 1},
        max_retries=2, retry_backoff_s=0.01,
    )
    if short_prompts:
        cfg["prompt_sets"] = {"default": short_prompt_set(tmp)}
    for key, value in overrides.items():
        cfg[key] = value
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def producer(args: list[str], queue: Path, timeout: float = 240, **extra: str) -> subprocess.CompletedProcess:
    """``python -m producer <args>`` against the queue in ``queue``."""
    return run_cli(args, queue=queue, timeout=timeout, **extra)


def popen(args: list[str], queue: Path, **extra: str) -> subprocess.Popen:
    """``["-m", "workers", ...]`` runs this Python; anything else is an executable (huey_consumer)."""
    cmd = [sys.executable, *PY_FLAGS, *args] if args[0] == "-m" else args
    flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)  # Windows: lets stop_process send Ctrl+Break
    return subprocess.Popen(cmd, cwd=ROOT, creationflags=flags, env=env_for(queue, **extra),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8")


def ledger(queue: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(queue / "ledger.sqlite3"), timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def run_id_of(queue: Path) -> str:
    with ledger(queue) as conn:
        return conn.execute("select run_id from runs order by created_at desc limit 1").fetchone()[0]


def wait_for(predicate, timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def run_state(queue: Path, run_id: str) -> str:
    with ledger(queue) as conn:
        return conn.execute("select state from runs where run_id = ?", (run_id,)).fetchone()[0]


def count_state(queue: Path, run_id: str, state: str) -> int:
    with ledger(queue) as conn:
        return conn.execute("select count(*) from requests where run_id = ? and state = ?", (run_id, state)).fetchone()[0]


def expected_ids(queue: Path, run_id: str) -> list[str]:
    with ledger(queue) as conn:
        return sorted(r[0] for r in conn.execute("select custom_id from requests where run_id = ?", (run_id,)))


def results_dir(tmp: Path, run_id: str) -> Path:
    dirs = list((tmp / "experiments" / f"run_{run_id}").glob("*/results"))
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_predictions(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stop_process(proc: subprocess.Popen, timeout: float = 60) -> str:
    """Ctrl+C (Ctrl+Break on Windows), then wait; returns its output."""
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.CTRL_BREAK_EVENT if sys.platform == "win32" else signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""
