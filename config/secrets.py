"""Every secret the tool knows, redacted in one place (issue 30, item 3).

Why: servers echo credentials in their errors ("invalid credentials: Bearer <key>"), and an error text
travels far: the ledger's ``last_error``, errors.jsonl, the reports, logs, the console, doctor. Each key's
variable is named once, on its registry row (``config/engines.py``: an engine's ``key_env``, a batch
provider's ``key_env``); ``redact_secrets`` replaces the value of every one of them (from the environment
or ``.env``) with ``<redacted>``. A server's words are redacted as they enter an engine error
(``workers.engines.http_common.server_message``) and batch errors when made; the ledger, the
console, the loggers and doctor redact again before anything is written or shown.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

from dotenv import dotenv_values

from config.engines import secret_env_names

REDACTED = "<redacted>"
MIN_SECRET = 4  # shorter values would redact ordinary words


def _secret_values() -> list[str]:
    dotenv: dict[str, str | None] = {}
    env_file = Path.cwd() / ".env"
    if env_file.is_file():
        try:
            dotenv = dotenv_values(stream=io.StringIO(env_file.read_text(encoding="utf-8-sig")), interpolate=False)
        except (OSError, UnicodeDecodeError):
            dotenv = {}
    values = {os.environ.get(n) or dotenv.get(n) or "" for n in secret_env_names()}
    return sorted((v for v in values if len(v) >= MIN_SECRET), key=len, reverse=True)


def redact_secrets(text: str) -> str:
    """``text`` with the value of every known key replaced by ``<redacted>``."""
    text = str(text)
    for value in _secret_values():
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's final message (installed on the root handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_secrets(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def redact_logging() -> None:
    """Put ``RedactingFilter`` on every handler of the root logger (after ``logging.basicConfig``)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
