"""Anthropic's Message Batches API as a ``BatchProvider`` (``workers/batch_provider.py``): a part is one
message batch whose requests travel inline (no file upload); the runner (``workers/batch/runner.py``)
drives it as it drives Fireworks and OpenAI.

Two things Anthropic does not take, and what stands in for them (docs/batch-providers.md):

- Our custom_ids (``dataset|item_id|condition|temp|sample_index|type``) break its pattern
  ``^[a-zA-Z0-9_-]{1,64}$``: each is sent as ``provider_id`` (``c`` + 24 hex of its sha256, ``-<n>``
  on a collision), kept in the ledger (``producer/ledger/anthropic_batches.py``) and read back there.
- Batches carry no metadata of ours and their ids are Anthropic's: the intent (part's job id, request
  count, time) is written to the ledger *before* the create is sent, one create in flight per key at a
  time, and the batch id as soon as it is heard. A part whose intent has no batch id (killed between
  create and record, or before the create left) is matched in the batch list, newest first: the
  oldest batch created at or after the intent (less ``anthropic.match_skew_s``) whose request count
  equals the part's and that no other part of this ledger holds. None found: the create never reached
  Anthropic, and it is sent (once) again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from typing import Any

from config.schema import EvalConfig
from config.token_count import text_estimate
from producer.host.env import KeyCredentials, _Secret
from producer.inputs.fireworks_plan import RowValidationError, validate_row
from producer.ledger import anthropic_batches as ledger
from producer.ledger import connect
from producer.runs.results_io import ResultsFormatError, parse_jsonl_bytes
from workers.anthropic_batch.client import BACKEND, AnthropicBatchClient, AnthropicError, created_at
from workers.batch_provider import BatchJob, BatchUsage

RESULTS_FILE = "results.jsonl"
CUSTOM_ID_RULE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # what Anthropic takes as a custom_id
# Anthropic's stop_reason in the contract's finish_reason words (what the report counts as truncated)
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "refusal": "content_filter"}
_fake_lock = threading.Lock()
_fake: dict[int, Any] = {}
# (api base, job id) -> batch id, for this worker process: a poll is one GET, never a list
_BATCH_IDS: dict[tuple[str, str], str] = {}


def provider_id(custom_id: str, n: int = 0) -> str:
    """The n-th candidate provider id of a custom_id: ``c`` + 24 hex of its sha256 (``-<n>`` after a collision)."""
    base = "c" + hashlib.sha256(custom_id.encode("utf-8")).hexdigest()[:24]
    return base if n == 0 else f"{base}-{n}"


def make_client(cfg: EvalConfig, engine: str) -> AnthropicBatchClient:
    """The API (key from env/.env), or for ``--dry-run`` an in-process offline fake server."""
    deadline, backoff = cfg.anthropic.request_deadline_s, cfg.retry_backoff_s
    if engine.endswith("_dry_run"):
        from workers.anthropic_batch.fake_server import FakeAnthropicServer, FakeState  # lazy: dry runs only

        with _fake_lock:
            srv = _fake.get(os.getpid())
            if srv is None:
                srv = _fake[os.getpid()] = FakeAnthropicServer(FakeState(api_key="dry-run")).start()
        return AnthropicBatchClient(KeyCredentials(_Secret("dry-run"), srv.base_url, BACKEND), deadline, backoff)
    return AnthropicBatchClient(KeyCredentials.from_env(BACKEND), deadline, backoff)


def as_job(batch: Any) -> BatchJob:
    """A ``MessageBatch`` as the runner's ``BatchJob``; ``output_id`` is the batch id (its results are
    found through it). An ended batch is complete when every request succeeded; its results file holds
    the rest (errored, canceled, expired), so it never fails as a whole unless the results are gone
    (archived: its rows fail and ``--retry-failed`` sends them again)."""
    raw = batch.model_dump(mode="json") if hasattr(batch, "model_dump") else dict(batch)
    status = str(raw.get("processing_status") or "in_progress")
    counts = {k: int(v or 0) for k, v in (raw.get("request_counts") or {}).items()}
    total = sum(counts.values())
    ok = counts.get("succeeded", 0)
    failed = counts.get("errored", 0) + counts.get("canceled", 0) + counts.get("expired", 0)
    ended = status == "ended"
    message = (f"{status}: {ok} succeeded, {counts.get('errored', 0)} errored, {counts.get('canceled', 0)} canceled,"
               f" {counts.get('expired', 0)} expired")
    return BatchJob(state=status, progress={"total": total, "processed": total - counts.get("processing", 0),
                                            "succeeded": ok, "failed": failed},
                    terminal=ended, failed=ended and not (raw.get("results_url") and not raw.get("archived_at")),
                    complete=ended and ok == total,
                    message=message, output_id=raw.get("id"), created_at=created_at(raw) if raw.get("created_at")
                    else None, raw={**raw, "state": status})


def anthropic_params(body: dict[str, Any], model: str, cache_min_tokens: int) -> dict[str, Any]:
    """A request body as the Messages API takes it: the system prompt at the top level (marked
    ``cache_control: ephemeral`` when it is at least ``cache_min_tokens`` long, estimated), ``stop`` as
    ``stop_sequences``; no ``seed`` (the API has none)."""
    msgs = body.get("messages") or []
    system = "".join(str(m.get("content") or "") for m in msgs if m.get("role") == "system")
    out: dict[str, Any] = {"model": model, "max_tokens": body["max_tokens"],
                           "messages": [{"role": m["role"], "content": m["content"]} for m in msgs
                                        if m.get("role") != "system"]}
    if system:
        cache = cache_min_tokens and text_estimate(system) >= cache_min_tokens
        out["system"] = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}] if cache else system
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    if body.get("stop"):
        out["stop_sequences"] = list(body["stop"])
    return out


class AnthropicProvider:
    """The Anthropic Message Batches API behind the ``BatchProvider`` protocol."""

    name = BACKEND

    def __init__(self, cfg: EvalConfig, client: AnthropicBatchClient) -> None:
        self.cfg = cfg
        self.client = client
        self._parts: dict[str, bytes] = {}  # input id -> the part's requests (JSONL), until its create

    @classmethod
    def for_run(cls, cfg: EvalConfig, engine: str) -> AnthropicProvider:
        return cls(cfg, make_client(cfg, engine))

    @property
    def _base(self) -> str:
        return self.client.creds.api_base

    def encode_part(self, rows: list[dict[str, Any]], model: str, params: dict[str, Any]) -> bytes:
        """The part's requests, one JSON line each (``{"custom_id": <provider id>, "params"}``): each row
        checked like a Fireworks row; its custom_id mapped (and the map kept) first."""
        seen: set[str] = set()
        for row in rows:
            validate_row(row)
            if row["custom_id"] in seen:  # the service would refuse the whole batch
                raise RowValidationError(f"{row['custom_id']}: duplicate custom_id in one part")
            seen.add(row["custom_id"])
        ids = ledger.provider_ids(connect(), [r["custom_id"] for r in rows], provider_id)
        lines = [json.dumps({"custom_id": ids[r["custom_id"]],
                             "params": anthropic_params(r["body"], model, self.cfg.anthropic.cache_min_tokens)},
                            ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows]
        return "".join(lines).encode("utf-8")

    def upload(self, dataset_id: str, filename: str, data: bytes, rows: int, display_name: str) -> None:
        """Nothing to upload: a message batch carries its requests; kept for ``create_job``."""
        self._parts[dataset_id] = data

    def find_job(self, job_id: str) -> BatchJob | None:
        key = (self._base, job_id)
        batch_id = _BATCH_IDS.get(key)
        if batch_id is None:
            record = ledger.batch_of(connect(), self._base, job_id)
            if record is None:
                return None  # no create was ever sent for this part
            batch_id = record["batch_id"] or self._match(record)
            if batch_id is None:
                return None
        _BATCH_IDS[key] = batch_id
        return as_job(self.client.get_batch(batch_id))

    def _match(self, record: Any) -> str | None:
        """The batch an intent made (module docstring), recorded for its part; None when there is none."""
        conn = connect()
        claimed = ledger.claimed_batch_ids(conn, self._base)
        since = record["intent_at"] - self.cfg.anthropic.match_skew_s
        found = [b for b in self.client.batches_since(since) if b.id not in claimed
                 and sum(int(v or 0) for v in b.request_counts.model_dump().values()) == record["n_requests"]]
        if not found:
            return None
        batch = min(found, key=created_at)
        ledger.record_batch(conn, self._base, record["job_id"], batch.id)
        return str(batch.id)

    def _settle_intents(self, job_id: str) -> None:
        """Match every other part's open intent; forget one older than a create can take (it never left)."""
        conn = connect()
        stale = time.time() - self._create_window()
        for record in ledger.open_intents(conn, self._base):
            if record["job_id"] != job_id and self._match(record) is None and record["intent_at"] < stale:
                ledger.drop_intent(conn, self._base, record["job_id"])

    def _create_window(self) -> float:
        return self.cfg.anthropic.request_deadline_s + 60.0

    def create_job(self, job_id: str, model: str, input_id: str, output_id: str, params: dict[str, Any],
                   display_name: str) -> BatchJob:
        existing = self.find_job(job_id)  # the runner looked already; look again right before paying
        if existing is not None:
            return existing
        data = self._parts.get(input_id)
        if data is None:
            raise RowValidationError(f"the requests of {input_id} were not prepared")
        requests = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        self._settle_intents(job_id)
        conn = connect()
        busy = ledger.claim_create(conn, self._base, job_id, len(requests), time.time() - self._create_window())
        if busy is not None:  # no status: the runner tries again after poll_interval_s
            raise AnthropicError(f"the batch of {busy['job_id']} is being created with this key; waiting for it", None)
        batch = self.client.create_batch(requests)
        ledger.record_batch(conn, self._base, job_id, batch.id)
        _BATCH_IDS[(self._base, job_id)] = batch.id
        return as_job(batch)

    def download(self, output_id: str) -> dict[str, bytes]:
        return {RESULTS_FILE: self.client.results(output_id)}

    def _rows(self, files: dict[str, bytes]) -> list[tuple[str, dict[str, Any]]]:
        """(our custom_id, result) per results line; a provider id this ledger never sent is an error
        (a batch matched to the wrong part must not be ingested)."""
        rows = parse_jsonl_bytes(files.get(RESULTS_FILE, b""), RESULTS_FILE)
        pids = [r.get("custom_id") for r in rows if isinstance(r, dict)]
        back = ledger.custom_ids_of(connect(), [p for p in pids if isinstance(p, str)])
        out = []
        for row in rows:
            pid = row.get("custom_id") if isinstance(row, dict) else None
            if pid not in back:
                raise ResultsFormatError(f"{RESULTS_FILE}: custom_id {pid!r} was not sent from this queue folder")
            out.append((back[pid], row.get("result") or {}))
        return out

    def read_rows(self, files: dict[str, bytes]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Succeeded results as chat-completion rows (prompt tokens = input + cache read + cache write);
        errored, canceled and expired ones as the row's error."""
        results: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for cid, result in self._rows(files):
            kind = result.get("type")
            if kind != "succeeded":
                inner = ((result.get("error") or {}).get("error")) or {}
                words = f"{inner.get('type')}: {inner.get('message')}" if inner else "not processed"
                errors[cid] = f"{kind} {words}"[:500]
                continue
            msg = result.get("message") or {}
            usage = msg.get("usage") or {}
            read, write = int(usage.get("cache_read_input_tokens") or 0), int(usage.get("cache_creation_input_tokens") or 0)
            prompt, out = int(usage.get("input_tokens") or 0) + read + write, int(usage.get("output_tokens") or 0)
            text = "".join(str(b.get("text") or "") for b in msg.get("content") or [] if b.get("type") == "text")
            reason = msg.get("stop_reason")
            body = {"id": msg.get("id"), "model": msg.get("model"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": FINISH.get(reason, reason)}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}}
            results[cid] = {"custom_id": cid, "response": {"status_code": 200, "request_id": msg.get("id"), "body": body},
                            "cached_tokens": read, "engine_facts": {"cache_write_tokens": write} if write else {}}
        return results, errors

    def cancel(self, job_id: str) -> BatchJob | None:
        """Cancel the part's batch (``canceling``, then ``ended`` with the rows not yet answered
        ``canceled``); an ended batch is left alone."""
        job = self.find_job(job_id)
        if job is None or job.terminal:
            return job
        return as_job(self.client.cancel(_BATCH_IDS[(self._base, job_id)]))

    def usage(self, job: BatchJob, files: dict[str, bytes] | None = None) -> BatchUsage | None:
        """The sum of the succeeded results' usage (a batch record carries none): input tokens with the
        cache's, cache reads (``cached_input_tokens``), cache writes, output tokens."""
        if not files:
            return None
        used = [r.get("message", {}).get("usage") or {} for _, r in self._rows(files) if r.get("type") == "succeeded"]
        if not used:
            return None
        total = {k: sum(int(u.get(k) or 0) for u in used) for k in
                 ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")}
        return BatchUsage(input_tokens=total["input_tokens"] + total["cache_read_input_tokens"]
                          + total["cache_creation_input_tokens"], cached_input_tokens=total["cache_read_input_tokens"],
                          output_tokens=total["output_tokens"], cache_write_tokens=total["cache_creation_input_tokens"])
