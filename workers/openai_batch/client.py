"""The OpenAI Files and Batch calls through the official SDK (``pip install .[openai]``), with our retries.

Why our own retry loop around the SDK (``max_retries=0``): the run's rules are the Fireworks client's
(``workers/fireworks/client.py``): connection errors, 408, 429 and 5xx back off exponentially (at
least ``Retry-After``) until ``deadline_s``; any other 4xx fails at once with the server's message; and
the key never appears in a message. The SDK would also retry 409 and stop after two tries.
Each list call is one page (``after`` cursor), so every page gets the same retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from config.engines import BATCH_BACKENDS
from producer.host.env import BatchConfigError, BatchServiceError, KeyCredentials
from workers.batch.retry import RETRY_STATUS, redact, retry_delay

log = logging.getLogger("workers.openai_batch")

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"


class OpenAIError(BatchServiceError):
    """An OpenAI call that failed for good (the batch runner's error type; ``status`` as there)."""


def _sdk() -> Any:
    try:
        import openai  # lazy: an optional extra, imported only by an OpenAI run
    except ImportError:
        raise BatchConfigError(BATCH_BACKENDS["openai"].sdk_hint) from None
    return openai


def _message(exc: Any) -> str:
    """The server's ``error.message`` (the SDK's str() adds the whole body)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        if err.get("message"):
            return str(err["message"])
    return " ".join(str(getattr(exc, "message", exc)).split())[:500]


class OpenAIBatchClient:
    """One key's files and batches."""

    def __init__(self, creds: KeyCredentials, deadline_s: float = 600.0, backoff_s: float = 1.0,
                 timeout_s: float = 120.0) -> None:
        openai = _sdk()
        self.creds = creds
        self.deadline_s = deadline_s
        self.backoff_s = backoff_s
        self._errors = openai
        self.sdk = openai.OpenAI(api_key=creds.api_key.reveal(), base_url=creds.api_base, max_retries=0,
                                 timeout=timeout_s)

    def __repr__(self) -> str:
        return f"OpenAIBatchClient(api_base={self.creds.api_base!r})"

    def call(self, what: str, fn: Callable[..., Any], *args: Any, once: bool = False, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with retries; OpenAIError (key redacted) when it fails for good.

        ``once``: a call that pays (create a batch) is repeated only after a 429 (refused, so nothing was
        made); a timeout, a lost connection or a 5xx may have made it, so the error goes up and the
        caller looks for what exists before trying again (the runner's ``find_job``)."""
        oa = self._errors
        deadline = time.monotonic() + self.deadline_s
        attempt = 0
        while True:
            attempt += 1
            retry_after = None
            try:
                return fn(*args, **kwargs)
            except oa.APIStatusError as exc:
                status, problem = exc.status_code, f"HTTP {exc.status_code}: {_message(exc)}"
                if status not in RETRY_STATUS and status < 500:
                    raise OpenAIError(self._clean(f"{what} failed: {problem}"), status) from None
                retry_after = exc.response.headers.get("retry-after")
                if once and status != 429:
                    raise OpenAIError(self._clean(f"{what} failed: {problem}"), status) from None
            except (oa.APIConnectionError, oa.APITimeoutError) as exc:
                status, problem = None, type(exc).__name__
                if once:
                    raise OpenAIError(f"{what}: no answer ({problem}); the batch may exist", None) from None
            delay = retry_delay(self.backoff_s, attempt, retry_after)
            if time.monotonic() + delay > deadline:
                raise OpenAIError(self._clean(f"{what} failed after {attempt} attempts: {problem}"), status)
            log.info("%s: %s (attempt %d), retrying in %.2fs", what, self._clean(problem), attempt, delay)
            time.sleep(delay)

    def _clean(self, text: str) -> str:
        return redact(text, self.creds.api_key.reveal())

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
