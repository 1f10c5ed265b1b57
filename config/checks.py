"""One check's verdict (``Check``) and what an engine's preflight learnt (``EngineFacts``).

Why in config (the bottom layer): each engine owns its preflight probe (``workers/engines/``), the
entry points (preflight, doctor) list the verdicts and the data checks build them too; a type all of
them share must sit below them all. ``producer.checks.verdicts`` re-exports it with the ways a list reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"

URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | info
    detail: str

    def __post_init__(self) -> None:
        # a URL's user:password@ (an endpoint written with credentials) never reaches a screen or a report
        self.detail = URL_CREDENTIALS.sub(r"\1", self.detail)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def line(self) -> str:
        tag = {OK: " OK ", WARN: "WARN", FAIL: "FAIL", INFO: "INFO"}.get(self.status, self.status.upper()[:4])
        return f"[{tag}] {self.name}: {' '.join(self.detail.split())}"


@dataclass
class EngineFacts:
    """What the engine checks learnt, for the context check."""

    context_limit: int | None = None  # tokens the engine will really allow per request
    context_source: str = ""
    counter: Callable[[list[dict[str, str]]], int] | None = None
    counter_name: str = "~4 characters per token"
