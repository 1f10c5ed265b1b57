"""Atomic artifact writes: temporary file in the same folder, then ``os.replace``.

Why: a crash never leaves a half-written JSON or CSV. On Windows, antivirus or a reader holding the
target open makes ``os.replace`` fail with PermissionError for a moment: retry with backoff.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPLACE_RETRIES = 20


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


def _write_via_temp(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
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
