"""Fetch a finished job's output files: fresh signed URLs until they are in, and safe file names.

Why: signed URLs are short-lived (``X-Goog-Expires``); one expired URL, or a passing 401 from
``:getDownloadEndpoint``, must never fail a job that Fireworks finished and billed. Any refusal asks
``:getDownloadEndpoint`` again for fresh URLs, with backoff, until the client's deadline; past it the
caller keeps the part open and tries again at the next poll. File names come from the API and end up
in a path on the user's disk: each is cut to a base name that cannot leave its folder on Windows or
Linux (no ``/``, ``\\``, ``..``, drive letters, reserved device names or trailing dots).
"""

from __future__ import annotations

import logging
import re
import time

from workers.batch.retry import MAX_BACKOFF_S
from workers.fireworks.client import BatchServiceError, FireworksClient

log = logging.getLogger("workers.fireworks")

OUTPUT_FILE = "BIJOutputSet.jsonl"
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')
MAX_NAME_LEN = 120


def safe_file_name(name: str, fallback: str = "file") -> str:
    """The last path component of ``name`` (split on ``/`` and ``\\``), made safe as one file name."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = _UNSAFE_CHARS.sub("_", base).strip().rstrip(". ")  # Windows drops trailing dots and spaces
    if not base.strip("."):  # "", ".", ".." and the like
        base = fallback
    if base.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        base = f"_{base}"
    return base[:MAX_NAME_LEN]


def name_files(keys: list[str]) -> dict[str, str]:
    """API key -> a unique safe file name (two keys that clean to one name get ``-2``, ``-3`` ...)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for n, key in enumerate(sorted(keys), start=1):
        name = safe_file_name(key, f"file-{n}")
        stem, dot, ext = name.partition(".")
        k = 1
        while name.lower() in used:  # case-insensitive: Windows file systems
            k += 1
            name = f"{stem}-{k}{dot}{ext}"
        used.add(name.lower())
        out[key] = name
    return out


def is_output_file(name: str) -> bool:
    """``BIJOutputSet.jsonl`` holds answers; everything else (``error-data``) holds failed rows."""
    return name == OUTPUT_FILE or "outputset" in name.lower()


def fetch_output_files(client: FireworksClient, dataset_id: str) -> dict[str, bytes]:
    """Every file of an output dataset, by safe name. A refused signed URL or a failed
    ``:getDownloadEndpoint`` asks for fresh URLs (files already in are kept) until the client's
    deadline; then the last BatchServiceError is raised for the caller to try again later."""
    got: dict[str, bytes] = {}
    deadline = time.monotonic() + client.deadline_s
    attempt = 0
    while True:
        attempt += 1
        try:
            urls = client.download_urls(dataset_id)
            for key, url in sorted(urls.items()):
                if key not in got:
                    got[key] = client.fetch_signed(url)
            names = name_files(list(got))
            return {names[k]: v for k, v in got.items()}
        except BatchServiceError as exc:
            problem = exc
        delay = min(MAX_BACKOFF_S, client.backoff_s * (2 ** (attempt - 1)))
        if time.monotonic() + delay > deadline:
            raise problem
        log.info("output of dataset %s: %s; asking for fresh download URLs in %.2fs", dataset_id, problem, delay)
        time.sleep(delay)
