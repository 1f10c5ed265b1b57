"""OpenAI's Batch API as a ``BatchProvider`` (``workers/batch_provider.py``): a part is one input file
(``purpose=batch``) and one batch (``/v1/chat/completions``, ``24h``); the runner
(``workers/batch/runner.py``) drives it as it drives Fireworks.

How a part finds what it made (docs/batch-providers.md): OpenAI assigns file and batch ids, so the
part's deterministic ids (``producer.inputs.fireworks_plan.fireworks_ids``) travel with them instead: the input
file is named ``<input id>.jsonl`` and the batch carries ``metadata.ee_job_id = <job id>``. Before any
upload the runner asks ``find_job`` (the batch list, newest first, matched on that metadata), and before
any upload ``upload`` looks for a file of that name and size; a worker killed after the service acted
but before it heard the answer therefore finds the batch, never paying twice. Ids seen in this process
are remembered, so a poll is one ``GET /batches/{id}``.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from config.schema import EvalConfig
from producer.host.env import KeyCredentials, _Secret
from producer.inputs.fireworks_plan import RowValidationError, validate_row
from producer.runs.results_io import ResultsFormatError, parse_jsonl_bytes
from workers.batch_provider import BatchJob, BatchUsage
from workers.openai_batch.client import ENDPOINT, OpenAIBatchClient

META_KEY = "ee_job_id"  # the batch's metadata key holding the part's deterministic job id
OUTPUT_FILE = "output.jsonl"
ERROR_FILE = "errors.jsonl"
TERMINAL = {"completed", "failed", "expired", "cancelled"}
_fake_lock = threading.Lock()
_fake: dict[int, Any] = {}
# (api base, job id) -> batch id, for this worker process: a poll is one GET /batches/{id}, and the batch
# list is read once per part after a restart (a provider is made per message; the process lives on)
_BATCH_IDS: dict[tuple[str, str], str] = {}


def make_client(cfg: EvalConfig, engine: str) -> OpenAIBatchClient:
    """The API (key from env/.env), or for ``--dry-run`` an in-process offline fake server."""
    settings = cfg.openai
    deadline, backoff = settings.request_deadline_s, cfg.retry_backoff_s
    if engine.endswith("_dry_run"):
        from workers.openai_batch.fake_server import FakeOpenAIServer, FakeState  # lazy: dry runs only

        with _fake_lock:
            srv = _fake.get(os.getpid())
            if srv is None:
                srv = _fake[os.getpid()] = FakeOpenAIServer(FakeState(api_key="dry-run")).start()
        return OpenAIBatchClient(KeyCredentials(_Secret("dry-run"), srv.base_url), deadline, backoff)
    return OpenAIBatchClient(KeyCredentials.from_env("openai"), deadline, backoff)


def as_job(batch: Any) -> BatchJob:
    """An OpenAI ``Batch`` as the runner's ``BatchJob``; ``output_id`` is the batch id (its files are found
    through it). A failed batch says why: its ``errors.data`` codes and lines."""
    raw = batch.model_dump(mode="json") if hasattr(batch, "model_dump") else dict(batch)
    status = str(raw.get("status") or "validating")
    counts = raw.get("request_counts") or {}
    done, failed = int(counts.get("completed") or 0), int(counts.get("failed") or 0)
    errors = ((raw.get("errors") or {}).get("data")) or []
    message = "; ".join(f"{e.get('code')} at line {e.get('line')}: {e.get('message')}" for e in errors[:5]) or status
    has_output = bool(raw.get("output_file_id") or raw.get("error_file_id"))
    return BatchJob(state=status, progress={"total": int(counts.get("total") or 0), "processed": done + failed,
                                            "succeeded": done, "failed": failed},
                    terminal=status in TERMINAL, failed=status == "failed" or (status == "cancelled" and not has_output),
                    complete=status == "completed", message=message[:500], output_id=raw.get("id"),
                    created_at=float(raw["created_at"]) if isinstance(raw.get("created_at"), int | float) else None,
                    raw={**raw, "state": status})


def openai_body(body: dict[str, Any], model: str, reasoning: bool) -> dict[str, Any]:
    """A request body as OpenAI takes it: the model in each row; a reasoning model gets
    ``max_completion_tokens`` and no ``temperature``, ``top_p`` or ``seed`` (the config refuses sweeps it
    cannot take, so a temperature dropped here is always 1.0); ``top_k`` does not exist there."""
    out = {"model": model, **{k: v for k, v in body.items() if k != "top_k"}}
    if reasoning:
        out["max_completion_tokens"] = out.pop("max_tokens")
        for key in ("temperature", "top_p", "seed"):
            out.pop(key, None)
    return out


class OpenAIProvider:
    """The OpenAI Batch API behind the ``BatchProvider`` protocol."""

    name = "openai"

    def __init__(self, cfg: EvalConfig, client: OpenAIBatchClient) -> None:
        self.cfg = cfg
        self.client = client
        self._files: dict[str, str] = {}  # input id -> file id (this provider)

    @classmethod
    def for_run(cls, cfg: EvalConfig, engine: str) -> OpenAIProvider:
        return cls(cfg, make_client(cfg, engine))

    def encode_part(self, rows: list[dict[str, Any]], model: str, params: dict[str, Any]) -> bytes:
        """The part's input file: each row checked like a Fireworks row, then in OpenAI's request shape."""
        reasoning = model in self.cfg.openai.reasoning_models
        seen: set[str] = set()
        lines = []
        for row in rows:
            validate_row(row)
            if row["custom_id"] in seen:  # the service would fail the whole batch
                raise RowValidationError(f"{row['custom_id']}: duplicate custom_id in one part")
            seen.add(row["custom_id"])
            out = {"custom_id": row["custom_id"], "method": "POST", "url": ENDPOINT,
                   "body": openai_body(row["body"], model, reasoning)}
            lines.append(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n")
        return "".join(lines).encode("utf-8")

    def upload(self, dataset_id: str, filename: str, data: bytes, rows: int, display_name: str) -> None:
        name = f"{dataset_id}.jsonl"
        found = self.client.find_file(name, len(data))
        if found is None:
            found = self.client.upload(name, data)
        self._files[dataset_id] = found.id

    def _key(self, job_id: str) -> tuple[str, str]:
        return (self.client.creds.api_base, job_id)

    def find_job(self, job_id: str) -> BatchJob | None:
        known = _BATCH_IDS.get(self._key(job_id))
        batch = self.client.get_batch(known) if known else self.client.find_batch(META_KEY, job_id)
        if batch is None:
            return None
        _BATCH_IDS[self._key(job_id)] = batch.id
        return as_job(batch)

    def create_job(self, job_id: str, model: str, input_id: str, output_id: str, params: dict[str, Any],
                   display_name: str) -> BatchJob:
        existing = self.find_job(job_id)  # the runner looked before uploading; look again right before paying
        if existing is not None:
            return existing
        file_id = self._files.get(input_id)
        if file_id is None:
            found = self.client.find_file(f"{input_id}.jsonl")
            if found is None:
                raise RowValidationError(f"input file {input_id}.jsonl was not uploaded")
            file_id = found.id
        batch = self.client.create_batch(file_id, {META_KEY: job_id, "ee_part": display_name[:512]})
        _BATCH_IDS[self._key(job_id)] = batch.id
        return as_job(batch)

    def download(self, output_id: str) -> dict[str, bytes]:
        batch = self.client.get_batch(output_id)
        files = {}
        for name, file_id in ((OUTPUT_FILE, batch.output_file_id), (ERROR_FILE, batch.error_file_id)):
            if file_id:
                files[name] = self.client.content(file_id)
        return files

    def read_rows(self, files: dict[str, bytes]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Output and error lines joined on custom_id: a 200 line is an answer; an error line, or a
        line with another status, is the row's error (the service's code and message)."""
        results: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for name in (OUTPUT_FILE, ERROR_FILE):
            for row in parse_jsonl_bytes(files.get(name, b""), name):
                cid = row.get("custom_id") if isinstance(row, dict) else None
                if not isinstance(cid, str):
                    raise ResultsFormatError(f"{name}: a line without custom_id")
                response = row.get("response") or {}
                body = response.get("body")
                if response.get("status_code") == 200 and isinstance(body, dict) and not row.get("error"):
                    details = (body.get("usage") or {}).get("prompt_tokens_details") or {}
                    results[cid] = {"custom_id": cid, "response": response, "cached_tokens": details.get("cached_tokens")}
                    continue
                err = row.get("error") or (body or {}).get("error") or {}
                code = err.get("code") if isinstance(err, dict) else None
                text = err.get("message") if isinstance(err, dict) else str(err)
                status = response.get("status_code")
                errors.setdefault(cid, " ".join(str(x) for x in (f"HTTP {status}" if status else None, code, text)
                                                 if x)[:500] or "failed on OpenAI")
        for cid in results:
            errors.pop(cid, None)
        return results, errors

    def cancel(self, job_id: str) -> BatchJob | None:
        """Cancel the part's batch (``cancelling``, then ``cancelled`` with the rows answered so far); an
        ended batch is left alone."""
        job = self.find_job(job_id)
        if job is None or job.terminal:
            return job
        return as_job(self.client.cancel(_BATCH_IDS[self._key(job_id)]))

    def usage(self, job: BatchJob, files: dict[str, bytes] | None = None) -> BatchUsage | None:
        """The batch's ``usage`` (input_tokens, input_tokens_details.cached_tokens, output_tokens) when the
        service reports it; else the sum of the output rows' own usage."""
        u = job.raw.get("usage") or {}
        if u.get("input_tokens") or u.get("output_tokens"):
            return BatchUsage(input_tokens=int(u.get("input_tokens") or 0), output_tokens=int(u.get("output_tokens") or 0),
                              cached_input_tokens=int((u.get("input_tokens_details") or {}).get("cached_tokens") or 0))
        rows = self.read_rows(files)[0] if files else {}
        if not rows:
            return None
        bodies = [r["response"]["body"].get("usage") or {} for r in rows.values()]
        return BatchUsage(input_tokens=sum(int(b.get("prompt_tokens") or 0) for b in bodies),
                          output_tokens=sum(int(b.get("completion_tokens") or 0) for b in bodies),
                          cached_input_tokens=sum(int(r.get("cached_tokens") or 0) for r in rows.values()))
