"""Helpers for the foundation tests (config, prepare, build, plan): a project-like working dir, snapshots."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.paths import ROOT


def make_workdir(tmp_path: Path) -> Path:
    """A working directory holding a copy of config/ (relative config paths resolve against it)."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "config", work / "config", ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return work


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and mtime: a write of any kind changes it."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.stat()
        out[p.relative_to(root).as_posix()] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out
