"""Preflight for the data: every configured dataset source can be read before a run starts.

Why: a run that passes every engine check and then stops at ``prepare`` (a hub file not downloaded on
an offline laptop, a parquet file without its reader, a typo in a path) wastes the user's first hour.
One check line per dataset says which source, where, and why not, with the fix. Small local files are
read through the real loader (the very code ``prepare`` runs); large ones only have their header checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from config.schema import EvalConfig
from config.wording import plural
from producer.checks.verdicts import FAIL, OK, Check
from producer.inputs.datasets.data_errors import DataError
from producer.inputs.datasets.sources import load_items, resolve_source

if TYPE_CHECKING:
    from producer.inputs.datasets.sources import DatasetSource

HEAD_TIMEOUT_S = 5.0
FULL_READ_MAX_BYTES = 64 * 1024 * 1024  # larger files: header only (the 2.5 GB official TriviaQA JSON)
SUFFIXES = {
    "squad_v2": (".json", ".jsonl", ".parquet"),
    "triviaqa": (".json", ".jsonl", ".parquet"),
    "nq_open": (".jsonl", ".parquet"),
}


def _fixes(dataset: str) -> str:
    if dataset not in SUFFIXES:  # a custom dataset: its file is declared in the config
        return f"check custom_datasets.{dataset}.path in the config"
    return f"or use the bundled sample (data.{dataset}: sample) or a local file (--data {dataset}=PATH)"


def parquet_reader_problem() -> str | None:
    """Why parquet files cannot be read here (pyarrow missing or broken), or None."""
    try:
        import pyarrow.parquet  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken binary wheel
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return f"pyarrow cannot be imported ({reason}): pip install \"pyarrow>=14\""
    return None


def _format_problem(dataset: str, path: Path) -> str | None:
    suffix = path.suffix.lower()
    allowed = SUFFIXES.get(dataset)
    if allowed is None:  # a custom dataset is JSONL whatever its file is called
        return None
    if suffix not in allowed:
        return f"unrecognised format {suffix or '(no extension)'!r} for {path} (expected {', '.join(allowed)})"
    if suffix == ".parquet":
        return parquet_reader_problem()
    return None


def _header_problem(dataset: str, path: Path) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(64)
    if path.suffix.lower() == ".parquet":
        return None if head.startswith(b"PAR1") else f"{path} is not a parquet file"
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if not text.startswith(("{", "[")):
        return f"{path} does not start like JSON"
    return None


def _local_check(source: DatasetSource, what: str) -> Check:
    """A file on disk: readable, recognised format, reader present, and (small files) fully loadable."""
    dataset, path = source.dataset, source.path
    if not path.exists():
        return Check("data", FAIL, f"{dataset}: {what} not found: {path} ({_fixes(dataset)})")
    if not path.is_file():
        return Check("data", FAIL, f"{dataset}: {what} is a folder, not a file: {path}")
    problem = _format_problem(dataset, path)
    if problem:
        return Check("data", FAIL, f"{dataset}: {problem}")
    try:
        size = path.stat().st_size
        if size > FULL_READ_MAX_BYTES:
            problem = _header_problem(dataset, path)
            if problem:
                return Check("data", FAIL, f"{dataset}: {problem}")
            return Check("data", OK, f"{dataset}: {what} {path} ({size / 1024 / 1024:.0f} MiB, header checked)")
        items = load_items(source, download=False) or []  # the very checks prepare makes
    except DataError as exc:
        return Check("data", FAIL, str(exc))
    except OSError as exc:
        return Check("data", FAIL, f"{dataset}: cannot read {path}: {exc.strerror or exc}")
    return Check("data", OK, f"{dataset}: {what} {path} ({plural(len(items), 'item')})")


def _download_check(dataset: str, url: str, dest: Path) -> Check:
    """A hub/url file not downloaded yet: its reader is present and the server answers."""
    import requests

    problem = _format_problem(dataset, dest)
    if problem:
        return Check("data", FAIL, f"{dataset}: {problem}")
    try:
        resp = requests.head(url, allow_redirects=True, timeout=HEAD_TIMEOUT_S)
    except requests.exceptions.RequestException as exc:
        kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "cannot connect"
        return Check("data", FAIL, f"{dataset}: not downloaded yet ({dest} is missing) and the download "
                                   f"{kind} ({url}): connect to the internet and run `python -m producer prepare`, "
                                   + _fixes(dataset))
    if resp.status_code >= 400:
        return Check("data", FAIL, f"{dataset}: not downloaded yet ({dest} is missing) and {url} answers "
                                   f"HTTP {resp.status_code}: " + _fixes(dataset))
    size = resp.headers.get("Content-Length")
    mib = f", {int(size) / 1024 / 1024:.0f} MiB" if size and size.isdigit() else ""
    return Check("data", OK, f"{dataset}: will be downloaded to {dest} at prepare ({url} answers{mib})")


def data_checks(cfg: EvalConfig) -> list[Check]:
    """One check per dataset the config reads (size 0 = not read). ``--data`` overrides: pass
    ``apply_data_overrides(cfg, overrides)``."""
    checks = []
    for dataset in cfg.dataset_names():
        if cfg.dataset_size(dataset) == 0:
            continue
        source = resolve_source(cfg, dataset)
        if source.kind in ("hub", "url") and not source.path.is_file():
            checks.append(_download_check(dataset, source.url or "", source.path))
        else:
            what = {"sample": "bundled sample", "file": "data file", "custom": f"custom {source.book} file"}.get(
                source.kind, f"{source.kind} file (cached)")
            checks.append(_local_check(source, what))
    return checks
