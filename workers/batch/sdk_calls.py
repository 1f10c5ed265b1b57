"""One official SDK call with the run's retry rules, for every batch client built on an SDK (OpenAI,
Anthropic): both SDKs are generated alike (``APIStatusError``, ``APIConnectionError``,
``APITimeoutError``), so one loop serves both.

Why our own loop (the SDK made with ``max_retries=0``): the rules are the Fireworks client's
(``workers/fireworks/client.py``): connection errors, 408, 429 and 5xx back off exponentially (at
least ``Retry-After``) until ``deadline_s``; any other 4xx fails at once with the server's message; and
the key never appears in a message. The SDKs would also retry 409 and stop after two tries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from producer.host.env import BatchServiceError
from workers.batch.retry import RETRY_STATUS, redact, retry_delay


def sdk_message(exc: Any) -> str:
    """The server's ``error.message`` (OpenAI ``{"error": {...}}``, Anthropic ``{"type": "error", "error":
    {...}}``); the SDK's str() adds the whole body."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        if err.get("message"):
            return str(err["message"])
    return " ".join(str(getattr(exc, "message", exc)).split())[:500]


class SdkCaller:
    """``call``: an SDK method with retries; ``error`` (a ``BatchServiceError``) when it fails for good."""

    error: type[BatchServiceError] = BatchServiceError
    log = logging.getLogger("workers.batch")

    def __init__(self, errors: Any, secret: str, deadline_s: float, backoff_s: float) -> None:
        self._errors = errors  # the SDK module: its exception classes
        self._secret = secret
        self.deadline_s = deadline_s
        self.backoff_s = backoff_s

    def call(self, what: str, fn: Callable[..., Any], *args: Any, once: bool = False, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with retries; ``self.error`` (key redacted) when it fails for good.

        ``once``: a call that pays (create a batch) is repeated only after a 429 (refused, so nothing was
        made); a timeout, a lost connection or a 5xx may have made it, so the error goes up and the
        caller looks for what exists before trying again (the runner's ``find_job``)."""
        sdk = self._errors
        deadline = time.monotonic() + self.deadline_s
        attempt = 0
        while True:
            attempt += 1
            retry_after = None
            try:
                return fn(*args, **kwargs)
            except sdk.APIStatusError as exc:
                status, problem = exc.status_code, f"HTTP {exc.status_code}: {sdk_message(exc)}"
                if status not in RETRY_STATUS and status < 500:
                    raise self.error(self._clean(f"{what} failed: {problem}"), status) from None
                retry_after = exc.response.headers.get("retry-after")
                if once and status != 429:
                    raise self.error(self._clean(f"{what} failed: {problem}"), status) from None
            except (sdk.APIConnectionError, sdk.APITimeoutError) as exc:
                status, problem = None, type(exc).__name__
                if once:
                    raise self.error(f"{what}: no answer ({problem}); the batch may exist", None) from None
            delay = retry_delay(self.backoff_s, attempt, retry_after)
            if time.monotonic() + delay > deadline:
                raise self.error(self._clean(f"{what} failed after {attempt} attempts: {problem}"), status)
            self.log.info("%s: %s (attempt %d), retrying in %.2fs", what, self._clean(problem), attempt, delay)
            time.sleep(delay)

    def _clean(self, text: str) -> str:
        return redact(text, self._secret)
