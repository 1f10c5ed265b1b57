"""Settings from the environment or a ``.env`` file (FIREWORKS_API_KEY and friends).

Why a tiny parser and not python-dotenv: we need ``KEY=VALUE`` lines, ``#`` comments, optional
``export`` and quotes, and never to overwrite a variable the shell already set. Values are returned,
never logged.
"""

from __future__ import annotations

import os
from pathlib import Path


def parse_env_text(text: str) -> dict[str, str]:
    """``KEY=VALUE`` per line; blank lines, ``#`` comments and a leading ``export`` are ignored."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:  # inline comment after an unquoted value
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


def read_env_file(path: Path | str | None = None) -> dict[str, str]:
    """The ``.env`` file in the working directory (or ``path``); empty when absent."""
    p = Path(path) if path is not None else Path.cwd() / ".env"
    if not p.is_file():
        return {}
    return parse_env_text(p.read_text(encoding="utf-8-sig"))


def get_setting(name: str, default: str | None = None, env_file: Path | str | None = None) -> str | None:
    """The process environment wins over ``.env``; empty values count as unset."""
    value = os.environ.get(name)
    if value:
        return value
    value = read_env_file(env_file).get(name)
    return value or default
