"""The Anthropic Message Batches calls through the official SDK (``pip install .[anthropic]``), with our
retries (``workers/batch/sdk_calls.py``: the SDK made with ``max_retries=0``). Each list call is one page
(``after_id`` cursor, newest first), so every page gets the same retries.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from producer.host.env import BatchServiceError, KeyCredentials, load_sdk
from workers.batch.sdk_calls import SdkCaller

log = logging.getLogger("workers.anthropic_batch")

BACKEND = "anthropic"  # this provider's registry row
PAGE = 100  # batches per list page (the API allows 1..1000)


class AnthropicError(BatchServiceError):
    """An Anthropic call that failed for good (the batch runner's error type; ``status`` as there)."""


def created_at(batch: Any) -> float:
    """A batch's ``created_at`` (RFC 3339; the SDK gives a datetime) as Unix time."""
    value = batch.created_at if not isinstance(batch, dict) else batch["created_at"]
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class AnthropicBatchClient(SdkCaller):
    """One key's message batches."""

    error = AnthropicError
    log = log

    def __init__(self, creds: KeyCredentials, deadline_s: float = 600.0, backoff_s: float = 1.0,
                 timeout_s: float = 120.0) -> None:
        anthropic = load_sdk(BACKEND)
        super().__init__(anthropic, creds.api_key.reveal(), deadline_s, backoff_s)
        self.creds = creds
        self.sdk = anthropic.Anthropic(api_key=creds.api_key.reveal(), base_url=creds.api_base, max_retries=0,
                                       timeout=timeout_s)

    def __repr__(self) -> str:
        return f"AnthropicBatchClient(api_base={self.creds.api_base!r})"

    def batches_since(self, since: float) -> Iterator[Any]:
        """Batches created at or after ``since`` (Unix time), newest first; stops paging at the first older one."""
        after = None
        while True:
            page = self.call("GET /v1/messages/batches", self.sdk.messages.batches.list, limit=PAGE,
                             **({"after_id": after} if after else {}))
            for batch in page.data:
                if created_at(batch) < since:
                    return
                yield batch
            if not page.has_more or not page.data:
                return
            after = page.last_id or page.data[-1].id

    def get_batch(self, batch_id: str) -> Any:
        return self.call(f"GET /v1/messages/batches/{batch_id}", self.sdk.messages.batches.retrieve, batch_id)

    def create_batch(self, requests: list[dict[str, Any]]) -> Any:
        return self.call("POST /v1/messages/batches", self.sdk.messages.batches.create, requests=requests, once=True)

    def cancel(self, batch_id: str) -> Any:
        return self.call(f"POST /v1/messages/batches/{batch_id}/cancel", self.sdk.messages.batches.cancel, batch_id)

    def results(self, batch_id: str) -> bytes:
        """The ended batch's results file (JSONL) as sent, from its ``results_url`` (kept in the run folder)."""
        if not self.get_batch(batch_id).results_url:
            raise AnthropicError(f"batch {batch_id} has no results_url (not ended, or archived)", 404)
        raw = self.sdk.messages.batches.with_raw_response
        return self.call(f"GET results of {batch_id}", lambda: raw.results(batch_id).read())
