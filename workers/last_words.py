"""A worker's last words: what native code prints to stderr while the model loads, kept in a file so
that the pool can quote it when the load kills the process (issue 23, item 3).

Why a file and fd 2: ggml writes its CUDA errors straight to the C runtime's stderr and then calls
abort(); nothing Python-level survives. The worker points fd 2 at ``queue/logs/worker-<pid>-load.log``
for the length of the load only, then restores it and replays the file to the real stderr (a load that
works prints what it always printed). A load that aborts leaves the file; the pool reads its last
lines into the one line that stops the run, then deletes it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from producer.host.queue_paths import load_log_path

LAST_LINES = 6


@contextmanager
def load_output_kept() -> Iterator[None]:
    """Send fd 2 to this process's load log while the block runs; replay it afterwards."""
    path = load_log_path(os.getpid())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError:  # no place for it: the load runs as before
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(target, 2)
    os.close(target)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        try:
            said = path.read_text(encoding="utf-8", errors="replace")
            path.unlink()
        except OSError:
            said = ""
        if said:
            sys.stderr.write(said)
            sys.stderr.flush()


def last_words(pid: int | None, n: int = LAST_LINES) -> str:
    """The last lines a dead worker printed while loading (" | "-joined; "" if none), and the file gone."""
    if pid is None:
        return ""
    path: Path = load_log_path(pid)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        path.unlink()
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-n:])
