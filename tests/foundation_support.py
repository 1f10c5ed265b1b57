"""Helpers for the foundation tests (config, prepare, build, plan): a project-like working dir and the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PY_FLAGS = ["-X", "warn_default_encoding", "-W", "error::EncodingWarning"]


def make_workdir(tmp_path: Path) -> Path:
    """A working directory holding a copy of config/ (relative config paths resolve against it)."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(REPO / "config", work / "config", ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return work


def run_cli(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (``python -m producer ...``), as a user would run it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("FIREWORKS_API_KEY", None)
    return subprocess.run(
        [sys.executable, *PY_FLAGS, "-m", "producer", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and mtime: a write of any kind changes it."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        out[p.relative_to(root).as_posix()] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out
