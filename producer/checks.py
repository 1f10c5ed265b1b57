"""One check's verdict (``Check``) and how a list of them reads: shared by preflight, its data checks
and the doctor report.

Why a module of its own: ``preflight`` runs the data checks and the doctor's folder facts, and both
build ``Check`` values; kept in ``preflight`` the type made the three modules import each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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


def can_start(checks: list[Check]) -> bool:
    return not any(c.failed for c in checks)


def format_checks(checks: list[Check]) -> str:
    lines = [c.line() for c in checks]
    failures = sum(1 for c in checks if c.failed)
    lines.append("ready: the run can start" if not failures else f"NOT ready: {failures} check(s) failed")
    return "\n".join(lines)


def existing_parent(path: Path) -> Path:
    """The nearest folder of ``path`` that exists (where free space and the file system can be read)."""
    path = path.resolve()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path
