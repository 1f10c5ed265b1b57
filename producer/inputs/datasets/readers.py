"""Low-level readers: JSON, JSONL (line-numbered errors) and parquet (optional pyarrow)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from producer.inputs.datasets.data_errors import DataError


def read_bytes_checked(path: Path, dataset: str) -> bytes:
    """Read a data file, turning any OS error into one line that names the file."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{dataset}: data file not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{dataset}: data path is a folder, not a file: {path}") from None
    except OSError as exc:
        raise DataError(f"{dataset}: cannot read data file {path}: {exc.strerror or exc}") from None


def _decode(raw: bytes, path: Path, dataset: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{dataset}: {path}: not UTF-8 text (byte {exc.start})") from None


def read_dataset_json(path: Path, dataset: str) -> Any:
    text = _decode(read_bytes_checked(path, dataset), path, dataset)
    if not text.strip():
        raise DataError(f"{dataset}: {path}: the file is empty: use a full file or the bundled sample "
                        f"(data.{dataset}: sample)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{dataset}: {path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def iter_jsonl(path: Path, dataset: str, errors: list[DataError] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)``; blank lines are skipped, a bad line is an error naming its number
    (raised, or with ``errors`` given, collected there and the line skipped: every bad row in one pass)."""
    text = _decode(read_bytes_checked(path, dataset), path, dataset)
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problem = DataError(f"{dataset}: {path}: line {lineno}: malformed JSON ({exc.msg})")
        else:
            if isinstance(obj, dict):
                yield lineno, obj
                continue
            problem = DataError(f"{dataset}: {path}: line {lineno}: expected a JSON object, got {type(obj).__name__}")
        if errors is None:
            raise problem
        errors.append(problem)


def read_parquet_rows(path: Path, dataset: str) -> list[dict[str, Any]]:
    """Parquet through pandas; pyarrow is optional, so say how to get it when it is missing."""
    read_bytes_checked(path, dataset)  # same one-line errors for missing/unreadable files
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise DataError(
            f"{dataset}: reading parquet ({path}) needs pyarrow: run `pip install pyarrow` (or the parquet extra) "
            "or use the JSONL export instead"
        ) from None
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise DataError(f"{dataset}: {path}: cannot read parquet ({exc.__class__.__name__})") from None
    return [_plain(row) for row in frame.to_dict(orient="records")]


def _plain(value: Any) -> Any:
    """numpy arrays/scalars from parquet -> plain lists, dicts and scalars."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
