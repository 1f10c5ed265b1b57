"""The OpenAI Files and Batch calls through the official SDK (``pip install .[openai]``), with our retries
(``workers/batch/sdk_calls.py``: the SDK made with ``max_retries=0``). Each list call is one page
(``after`` cursor), so every page gets the same retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from producer.host.env import BatchServiceError, KeyCredentials, load_sdk
from workers.batch.sdk_calls import SdkCaller

log = logging.getLogger("workers.openai_batch")

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"


class OpenAIError(BatchServiceError):
    """An OpenAI call that failed for good (the batch runner's error type; ``status`` as there)."""


class OpenAIBatchClient(SdkCaller):
    """One key's files and batches."""

    error = OpenAIError
    log = log

    def __init__(self, creds: KeyCredentials, deadline_s: float = 600.0, backoff_s: float = 1.0,
                 timeout_s: float = 120.0) -> None:
        openai = load_sdk("openai")
        super().__init__(openai, creds.api_key.reveal(), deadline_s, backoff_s)
        self.creds = creds
        self.sdk = openai.OpenAI(api_key=creds.api_key.reveal(), base_url=creds.api_base, max_retries=0,
                                 timeout=timeout_s)

    def __repr__(self) -> str:
        return f"OpenAIBatchClient(api_base={self.creds.api_base!r})"

    def _pages(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
        after = None
        while True:
            page = self.call(what, fn, **kwargs, **({"after": after} if after else {}))
            yield from page.data
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    # -- files ----------------------------------------------------------------------------------
    def find_file(self, filename: str, nbytes: int | None = None) -> Any | None:
        """The newest usable batch input file of this name (and size): an upload whose answer was lost."""
        for f in self._pages("GET /files", self.sdk.files.list, purpose="batch", limit=10_000):
            if f.filename == filename and f.status != "error" and nbytes in (None, f.bytes):
                return f
        return None

    def upload(self, filename: str, data: bytes) -> Any:
        return self.call("POST /files", self.sdk.files.create, file=(filename, data, "application/jsonl"),
                         purpose="batch")

    def content(self, file_id: str) -> bytes:
        return self.call(f"GET /files/{file_id}/content", lambda: self.sdk.files.content(file_id).content)

    # -- batches --------------------------------------------------------------------------------
    def find_batch(self, key: str, value: str) -> Any | None:
        """The newest batch whose ``metadata[key]`` is ``value`` (listing is newest first)."""
        for b in self._pages("GET /batches", self.sdk.batches.list, limit=100):
            if (b.metadata or {}).get(key) == value:
                return b
        return None

    def get_batch(self, batch_id: str) -> Any:
        return self.call(f"GET /batches/{batch_id}", self.sdk.batches.retrieve, batch_id)

    def create_batch(self, input_file_id: str, metadata: dict[str, str]) -> Any:
        return self.call("POST /batches", self.sdk.batches.create, input_file_id=input_file_id, endpoint=ENDPOINT,
                         completion_window=COMPLETION_WINDOW, metadata=metadata, once=True)

    def cancel(self, batch_id: str) -> Any:
        return self.call(f"POST /batches/{batch_id}/cancel", self.sdk.batches.cancel, batch_id)
