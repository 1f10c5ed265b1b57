"""Atomic artifact writes: temporary file in the same folder, then ``os.replace``.

Why: a crash never leaves a half-written JSON or CSV. On Windows, antivirus or a reader holding the
target open makes ``os.replace`` fail with PermissionError for a moment: retry with backoff.
Every temporary name is unique (``mkstemp``), so two writers of one file never share a temp file, and
the file gets the mode any other new file would get (0666 minus the umask), not mkstemp's 0600:
colleagues on a shared server can read the reports.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPLACE_RETRIES = 20
_umask_lock = threading.Lock()


def replace_with_retry(src: Path, dst: Path, retries: int = REPLACE_RETRIES, delay_s: float = 0.05) -> None:
    """``os.replace`` that survives a transient PermissionError (Windows file held open)."""
    for attempt in range(retries):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if attempt == retries - 1:
                raise
            time.sleep(delay_s * (attempt + 1))


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _unique_temp(path: Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new, uniquely named temporary file next to ``path``, with the mode of an ordinary new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    if os.name == "posix":  # mkstemp makes 0600; Windows has no mode bits to fix
        try:
            os.fchmod(fd, 0o666 & ~current_umask())
        except BaseException:
            os.close(fd)
            Path(tmp_name).unlink(missing_ok=True)
            raise
    return fd, Path(tmp_name)


@contextlib.contextmanager
def atomic_target(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a unique temporary path next to ``path`` for a writer that needs a file name (matplotlib,
    zipfile, a copy); on success it replaces ``path`` (with retry), on any error it is removed."""
    path = Path(path)
    fd, tmp = _unique_temp(path, suffix)
    os.close(fd)
    try:
        yield tmp
        replace_with_retry(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def copy_file_atomic(src: Path, dst: Path) -> Path:
    """Copy ``src`` to ``dst`` so that ``dst`` is either absent, the old file or the whole copy."""
    import shutil

    with atomic_target(Path(dst)) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def _write_via_temp(path: Path, write) -> Path:
    path = Path(path)
    fd, tmp = _unique_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        replace_with_retry(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return _write_via_temp(path, lambda fh: fh.write(text))


def to_strict_json(value: Any) -> Any:
    """Replace NaN/Infinity (anywhere) by None so the output is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_strict_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return to_strict_json(value.item())
    return value


def write_json_atomic(path: Path, data: Any, indent: int = 2) -> Path:
    text = json.dumps(to_strict_json(data), indent=indent, ensure_ascii=False, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[Any]) -> Path:
    def write(fh):
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")

    return _write_via_temp(path, write)


def write_csv_atomic(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any] | dict]) -> Path:
    """CSV in the csv module's default dialect, ``newline=""`` (CONTRACT preamble)."""

    def write(fh):
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            if isinstance(row, dict):
                row = [row.get(c) for c in columns]
            writer.writerow(["" if v is None else v for v in row])

    return _write_via_temp(path, write)
