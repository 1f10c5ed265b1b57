"""Fireworks as a ``BatchProvider`` (``workers/batch_provider.py``): datasets, batch inference jobs,
signed-URL downloads and the ``BIJOutputSet.jsonl`` / ``error-data`` files (docs/architecture.md facts 8
and 13). The runner (``runner.py``) drives it; ``client.py`` holds the REST calls and retries.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import datetime
from typing import Any

from config.schema import EvalConfig
from producer.inputs.fireworks_plan import DRY_RUN_ENGINE, TERMINAL_OK
from producer.runs.results_io import normalise_raw_row, parse_jsonl_bytes
from workers.batch_provider import BatchJob, BatchUsage
from workers.fireworks.client import (
    TERMINAL_FAILED,
    TERMINAL_STATES,
    BatchServiceError,
    Credentials,
    FireworksClient,
    _Secret,
    job_progress,
    short_id,
)
from workers.fireworks.download import fetch_output_files, is_output_file

_fake_lock = threading.Lock()
_fake: dict[int, Any] = {}


def make_client(cfg: EvalConfig, engine: str) -> FireworksClient:
    """The real API (key from env/.env), or for ``--dry-run`` an in-process offline fake server."""
    deadline, backoff = cfg.fireworks.request_deadline_s, cfg.retry_backoff_s
    if engine == DRY_RUN_ENGINE:
        from workers.fireworks.fake_server import (  # lazy: the fake server, dry runs only
            FakeFireworksServer,
            FakeState,
        )

        with _fake_lock:
            srv = _fake.get(os.getpid())
            if srv is None:
                srv = _fake[os.getpid()] = FakeFireworksServer(FakeState(api_key="dry-run")).start()
        creds = Credentials(_Secret("dry-run"), "dry-run", srv.base_url)
        return FireworksClient(creds, deadline_s=deadline, backoff_s=backoff)
    return FireworksClient(Credentials.from_env(), deadline_s=deadline, backoff_s=backoff)


def created_at(job: dict[str, Any]) -> float | None:
    """``createTime`` (RFC 3339 with up to nanoseconds, e.g. 2023-11-07T05:31:56.123456789Z) as a Unix
    time; None if absent or unreadable."""
    raw = str(job.get("createTime") or "").strip()
    if not raw:
        return None
    raw = re.sub(r"(\.\d{6})\d+", r"\1", raw).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return None


def as_job(job: dict[str, Any]) -> BatchJob:
    """A Fireworks ``batchInferenceJob`` as the runner's ``BatchJob``."""
    state = job.get("state") or "JOB_STATE_UNSPECIFIED"
    return BatchJob(state=state, progress=job_progress(job), terminal=state in TERMINAL_STATES,
                    failed=state in TERMINAL_FAILED, complete=state in TERMINAL_OK,
                    message=((job.get("status") or {}).get("message") or state).strip(),
                    output_id=short_id(job.get("outputDatasetId")) or None, created_at=created_at(job), raw=job)


class FireworksProvider:
    """The Fireworks batch API behind the ``BatchProvider`` protocol."""

    name = "fireworks"

    def __init__(self, cfg: EvalConfig, client: FireworksClient) -> None:
        self.cfg = cfg
        self.client = client

    @classmethod
    def for_run(cls, cfg: EvalConfig, engine: str) -> FireworksProvider:
        return cls(cfg, make_client(cfg, engine))

    def _wait_ready(self, dataset_id: str) -> None:
        settings = self.cfg.fireworks
        deadline = time.monotonic() + settings.request_deadline_s
        while True:
            ds = self.client.get_dataset(dataset_id) or {}
            if ds.get("state") == "READY":
                return
            if time.monotonic() > deadline:
                raise BatchServiceError(f"dataset {dataset_id} not READY after {settings.request_deadline_s:.0f}s"
                                     f" (state {ds.get('state')})")
            time.sleep(min(settings.poll_interval_s, 5.0))

    def upload(self, dataset_id: str, filename: str, data: bytes, rows: int, display_name: str) -> None:
        ds = self.client.get_dataset(dataset_id)
        if ds is None:
            ds = self.client.create_dataset(dataset_id, rows, display_name)
        if ds.get("state") != "READY":
            self.client.upload_dataset(dataset_id, filename, data)
            self._wait_ready(dataset_id)

    def find_job(self, job_id: str) -> BatchJob | None:
        job = self.client.get_job(job_id)
        return None if job is None else as_job(job)

    def create_job(self, job_id: str, model: str, input_id: str, output_id: str, params: dict[str, Any],
                   display_name: str) -> BatchJob:
        return as_job(self.client.create_job(job_id, model, input_id, output_id, params, display_name))

    def download(self, output_id: str) -> dict[str, bytes]:
        return fetch_output_files(self.client, output_id)

    def cancel(self, job_id: str) -> BatchJob | None:
        """Delete the job while it runs (Fireworks has no separate cancel); an ended job is left alone.
        A deleted job that no longer reads back is reported CANCELLED: its rows fail at the next poll."""
        job = self.find_job(job_id)
        if job is None or job.terminal:
            return job
        self.client.delete_job(job_id)
        return self.find_job(job_id) or BatchJob(state="JOB_STATE_CANCELLED", progress=job.progress, terminal=True,
                                                 failed=True, message="deleted", created_at=job.created_at)

    def usage(self, job: BatchJob, files: dict[str, bytes] | None = None) -> BatchUsage | None:
        """``jobProgress``'s token counts (inputTokens, outputTokens, cachedInputTokenCount)."""
        p = job.progress
        if not (p.get("input_tokens") or p.get("output_tokens")):
            return None
        return BatchUsage(input_tokens=p["input_tokens"], cached_input_tokens=p.get("cached_input_tokens") or 0,
                          output_tokens=p.get("output_tokens") or 0)

    def read_rows(self, files: dict[str, bytes]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        results: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for name, content in files.items():
            if not is_output_file(name):
                continue
            for row in parse_jsonl_bytes(content, name):
                norm = normalise_raw_row(row)
                details = ((row.get("response") or {}).get("usage") or {}).get("prompt_tokens_details") or {}
                norm["cached_tokens"] = details.get("cached_tokens")
                results[norm["custom_id"]] = norm  # rows arrive out of order: join on custom_id
        for name, content in files.items():
            if is_output_file(name):
                continue
            for row in parse_jsonl_bytes(content, name):  # error-data: the rows Fireworks could not answer
                if isinstance(row, dict) and row.get("custom_id"):
                    err = row.get("error") or row.get("response") or "failed on Fireworks"
                    errors[str(row["custom_id"])] = json.dumps(err, ensure_ascii=False)[:500] \
                        if not isinstance(err, str) else err
        return results, errors
