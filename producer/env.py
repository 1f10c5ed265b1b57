"""Settings from the environment or a ``.env`` file (FIREWORKS_API_KEY and friends).

Why python-dotenv: a hand-written parser kept the quotes of ``KEY="v" # comment`` and so yielded a
wrong key. python-dotenv implements the format users expect (quotes, inline comments, ``export``,
escapes, multi-line quoted values). Variables are never expanded (``${X}`` stays literal: a key is
taken as written), the shell's environment always wins over the file, and values are returned,
never logged.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from dotenv import dotenv_values


def parse_env_text(text: str) -> dict[str, str]:
    """``KEY=VALUE`` per line in python-dotenv's format; keys without a value are left out."""
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {k: v for k, v in values.items() if k and v is not None}


def read_env_file(path: Path | str | None = None) -> dict[str, str]:
    """The ``.env`` file in the working directory (or ``path``); empty when absent."""
    p = Path(path) if path is not None else Path.cwd() / ".env"
    if not p.is_file():
        return {}
    return parse_env_text(p.read_text(encoding="utf-8-sig"))  # Notepad may add a BOM


def get_setting(name: str, default: str | None = None, env_file: Path | str | None = None) -> str | None:
    """The process environment wins over ``.env``; empty values count as unset."""
    value = os.environ.get(name)
    if value:
        return value
    value = read_env_file(env_file).get(name)
    return value or default


def setting_source(name: str, env_file: Path | str | None = None) -> str | None:
    """Where ``get_setting(name)`` comes from: "environment", ".env" or None (unset), for messages."""
    if os.environ.get(name):
        return "environment"
    return ".env" if read_env_file(env_file).get(name) else None
