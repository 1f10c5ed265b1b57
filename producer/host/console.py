"""Console output that never crashes: one-line errors, and no UnicodeEncodeError on cp1252 consoles."""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable
from typing import Any

import click

from producer.host.exit_codes import BAD_INPUT, INTERRUPTED


class UserError(Exception):
    """A problem the user can fix; shown as one line, exit status ``exit_code``."""

    exit_code = BAD_INPUT

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def make_console_safe() -> None:
    """Replace unencodable characters instead of raising (Windows cp1252 consoles)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="replace")
            except (ValueError, OSError):
                pass


def fail(message: str, exit_code: int = BAD_INPUT) -> None:
    """Print ``message`` on one line to stderr and exit."""
    from config.secrets import redact_secrets  # lazy: --help speed (python-dotenv)

    click.echo(" ".join(redact_secrets(str(message)).split()), err=True)
    sys.exit(exit_code)


def one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for CLI commands: known user errors become one line and an exit status."""
    from config.errors import ConfigError  # lazy: --help speed (config.errors loads pydantic)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            msg = str(exc)
            fail(msg if msg.startswith("config error:") else f"config error: {msg}", BAD_INPUT)
        except UserError as exc:
            fail(f"error: {exc}", exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", INTERRUPTED)

    return wrapper


_ESCAPES = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` without terminal control sequences: OSC (hyperlinks, window titles, clipboard writes),
    CSI (colours, cursor moves) and every other control character but tab and newline. Model answers
    are printed by ``show``: what a model writes must not drive the user's terminal."""
    return _ESCAPES.sub("", str(text))
