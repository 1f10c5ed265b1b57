"""What every batch client shares: which answers are retried, how long to wait, and the key kept out
of any text (a provider's client imports these; none of them imports another provider's client)."""

from __future__ import annotations

RETRY_STATUS = {408, 429}  # and every 5xx
MAX_BACKOFF_S = 60.0


def retry_delay(backoff_s: float, attempt: int, retry_after: str | None) -> float:
    """Seconds before the next try: exponential from ``backoff_s``, at least the server's Retry-After
    (seconds), never more than MAX_BACKOFF_S. Both batch clients use it."""
    delay = min(MAX_BACKOFF_S, backoff_s * (2 ** (attempt - 1)))
    if retry_after:
        try:
            delay = min(MAX_BACKOFF_S, max(delay, float(retry_after)))
        except ValueError:
            pass
    return delay


def redact(text: str, secret: str | None) -> str:
    """Remove the key from any text that may reach a log, file or error message."""
    text = str(text)
    if secret and len(secret) >= 4:
        text = text.replace(secret, "<redacted>")
    return text
