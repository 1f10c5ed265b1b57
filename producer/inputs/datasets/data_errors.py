"""Data problems the user can fix (bad file, bad line, offline): one line, exit status 2."""

from __future__ import annotations

from producer.host.console import UserError


class DataError(UserError):
    """A dataset file or download problem; the message names the file (and line) at fault."""

    exit_code = 2
