"""Download official dataset files once into ``data/raw/`` (resumable, checksum recorded).

Why: the hub source must work on a flaky laptop connection: a partial download resumes with an HTTP
Range request, the finished file's sha256 is recorded in ``data/raw/downloads.json``, and being
offline gives one line that says what to do instead of a traceback.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from config.atomic import replace_with_retry, write_json_atomic
from producer.inputs.datasets.data_errors import DataError

# Official files (dev splits: the usual evaluation sets). TriviaQA's official archive is 2.5 GB, so the
# hub source uses the Hugging Face export of rc.nocontext (parquet: needs pyarrow).
HUB_URLS: dict[str, str] = {
    "squad_v2": "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json",
    "nq_open": "https://raw.githubusercontent.com/google-research-datasets/natural-questions/master/"
    "nq_open/NQ-open.dev.jsonl",
    "triviaqa": "https://huggingface.co/datasets/mandarjoshi/trivia_qa/resolve/main/rc.nocontext/"
    "validation-00000-of-00001.parquet",
}
RECORD_NAME = "downloads.json"
CHUNK = 1 << 16


def file_name_for(url: str) -> str:
    name = Path(urlparse(url).path).name
    return name or "download.bin"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _records(raw_dir: Path) -> dict:
    path = raw_dir / RECORD_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def recorded_checksum(dest: Path) -> str | None:
    return _records(dest.parent).get(dest.name, {}).get("sha256")


def ensure_downloaded(url: str, dest: Path, dataset: str, timeout_s: float = 30.0) -> Path:
    """Return ``dest``, downloading it first if absent; record its sha256. One-line DataError on failure."""
    dest = Path(dest)
    if dest.is_file():
        if recorded_checksum(dest) is None:
            _record(dest, url)
        return dest
    import requests

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(url, headers=headers, stream=True, timeout=timeout_s) as resp:
            if resp.status_code == 416:  # the part file is already complete
                pass
            elif resp.status_code not in (200, 206):
                raise DataError(f"{dataset}: download failed: HTTP {resp.status_code} from {url}")
            else:
                mode = "ab" if resp.status_code == 206 and have else "wb"
                total = resp.headers.get("Content-Length")
                _stream(resp, part, mode, dataset, have if mode == "ab" else 0, total)
    except requests.exceptions.RequestException as exc:
        kind = "timed out" if isinstance(exc, requests.exceptions.Timeout) else "cannot connect"
        raise DataError(
            f"{dataset}: download {kind} ({url}); offline? Partial data is kept in {part.parent} and "
            f"resumes next time; or use the bundled sample (data.{dataset}: sample) or a local file "
            f"(--data {dataset}=PATH)"
        ) from None
    replace_with_retry(part, dest)
    _record(dest, url)
    return dest


def _stream(resp, part: Path, mode: str, dataset: str, start: int, total: str | None) -> None:
    done = start
    expected = start + int(total) if total and total.isdigit() else None
    last_report = 0
    with part.open(mode) as fh:
        for chunk in resp.iter_content(CHUNK):
            fh.write(chunk)
            done += len(chunk)
            if done - last_report >= 8 << 20:  # progress every 8 MiB
                last_report = done
                size = f"/{expected >> 20}" if expected else ""
                print(f"{dataset}: downloaded {done >> 20}{size} MiB", file=sys.stderr, flush=True)
    if expected is not None and done < expected:
        raise DataError(f"{dataset}: download interrupted at {done} of {expected} bytes; run again to resume")


def _record(dest: Path, url: str) -> None:
    records = _records(dest.parent)
    records[dest.name] = {
        "url": url,
        "sha256": sha256_file(dest),
        "bytes": dest.stat().st_size,
        "downloaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json_atomic(dest.parent / RECORD_NAME, records)
