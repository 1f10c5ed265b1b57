"""The OS lock that elects the one process allowed to hold the in-process model (docs/architecture.md fact 4).

Why an OS lock: the operating system releases it when the holder dies (kill -9, crash, power loss of
the process), so a dead GPU worker never blocks the run and no stale pid file needs cleaning.
POSIX uses ``fcntl.flock``; Windows uses ``msvcrt.locking`` on the first byte of the file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO


class ModelLock:
    """Non-blocking, process-wide; kept for the life of the process once acquired."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fh: IO[bytes] | None = None
        self._pid = -1

    @property
    def held(self) -> bool:
        return self._fh is not None and self._pid == os.getpid()

    def try_acquire(self) -> bool:
        if self.held:
            return True
        self._fh = None  # a handle inherited through fork is not ours
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")  # noqa: SIM115 - kept open while the lock is held
        try:
            if sys.platform == "win32":
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._fh = fh
        self._pid = os.getpid()
        return True

    def release(self) -> None:
        if not self.held or self._fh is None:
            return
        try:
            if sys.platform == "win32":
                import msvcrt

                self._fh.seek(0)
                msvcrt.locking(self._fh.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        finally:
            self._fh.close()
            self._fh = None
