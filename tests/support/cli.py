"""The one way tests run the CLI in a subprocess: interpreter flags, environment, ``python -m producer``.

Why here: several test files wrote their own ``subprocess.run`` of ``python -m producer``; how the CLI
is started belongs in one place.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil

from tests.support.paths import ROOT

# Every CLI subprocess turns a missing encoding= into an error, as the suite itself does.
PY_FLAGS = ["-X", "warn_default_encoding", "-W", "error::EncodingWarning"]


def cli_env(queue: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment with the repo importable, the queue in ``queue`` (when given), no fault
    injection and no Fireworks key unless ``extra`` sets them."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("EXCELLENCE_FAULTS", None)
    env.pop("FIREWORKS_API_KEY", None)
    if queue is not None:
        env["EXCELLENCE_QUEUE_DIR"] = str(queue)
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path = ROOT, queue: Path | None = None, timeout: float = 240,
            exe: list[str] | None = None, preexec: Callable[[], None] | None = None,
            **extra: str) -> subprocess.CompletedProcess:
    """``python -m producer <args>`` (or ``exe <args>``) in a subprocess, as a user would run it."""
    cmd = exe or [sys.executable, *PY_FLAGS, "-m", "producer"]
    return subprocess.run([*cmd, *args], cwd=cwd, env=cli_env(queue, **extra), capture_output=True, text=True,
                          encoding="utf-8", timeout=timeout, preexec_fn=preexec)


def kill_tree(proc: subprocess.Popen) -> None:
    """kill -9 a command and every process it started (a crash at any step), then reap it."""
    parent = psutil.Process(proc.pid)
    for child in parent.children(recursive=True):
        child.kill()
    parent.kill()
    proc.wait(timeout=30)
