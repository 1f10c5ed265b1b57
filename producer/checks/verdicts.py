"""One check's verdict (``Check``) and how a list of them reads: shared by preflight, its data checks
and the doctor report.

Why a module of its own: ``preflight`` runs the data checks and the doctor's folder facts, and both
build ``Check`` values; kept in ``preflight`` the type made the three modules import each other.
"""

from __future__ import annotations

from pathlib import Path

from config.checks import FAIL, INFO, OK, URL_CREDENTIALS, WARN, Check  # noqa: F401 - the shared verdicts, re-exported
from config.secrets import redact_secrets
from config.wording import plural


def can_start(checks: list[Check]) -> bool:
    return not any(c.failed for c in checks)


def format_checks(checks: list[Check]) -> str:
    """doctor's text (every known key redacted, whatever a server said in a check)."""
    lines = [redact_secrets(c.line()) for c in checks]
    failures = sum(1 for c in checks if c.failed)
    lines.append("ready: the run can start" if not failures else f"NOT ready: {plural(failures, 'check')} failed")
    return "\n".join(lines)


def existing_parent(path: Path) -> Path:
    """The nearest folder of ``path`` that exists (where free space and the file system can be read)."""
    path = path.resolve()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path
