"""Settings from the environment or a ``.env`` file (FIREWORKS_API_KEY and friends).

Why python-dotenv: a hand-written parser kept the quotes of ``KEY="v" # comment`` and so yielded a
wrong key. python-dotenv implements the format users expect (quotes, inline comments, ``export``,
escapes, multi-line quoted values). Variables are never expanded (``${X}`` stays literal: a key is
taken as written), the shell's environment always wins over the file, and values are returned,
never logged.
"""

from __future__ import annotations

import importlib
import io
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from config.engines import BATCH_BACKENDS
from config.secrets import redact_secrets


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


def user_env_value(name: str) -> str | None:
    """A variable set with ``setx`` (HKCU\\Environment) that this shell may not have yet (Windows;
    None elsewhere). Ollama's tray app reads such variables when it starts (OLLAMA_NUM_PARALLEL)."""
    import sys

    if sys.platform != "win32":
        return None
    try:
        import winreg

        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, "Environment") as key:
            return str(winreg.QueryValueEx(key, name)[0])
    except OSError:
        return None


def setting_source(name: str, env_file: Path | str | None = None) -> str | None:
    """Where ``get_setting(name)`` comes from: "environment", ".env" or None (unset), for messages."""
    if os.environ.get(name):
        return "environment"
    return ".env" if read_env_file(env_file).get(name) else None


# Batch providers' settings: the API base check and the credentials (one definition; the providers'
# clients use them, and plan/doctor show the API base notice without importing workers).
DEFAULT_API_BASE = BATCH_BACKENDS["fireworks"].default_base


class BatchServiceError(RuntimeError):
    """A batch provider's call that failed for good; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(redact_secrets(message))  # every provider's key, whoever echoed it
        self.status = status


class BatchConfigError(BatchServiceError):
    """Missing key, account or SDK: the one line says what to set or install."""


class _Secret:
    """Holds the key; its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``: a connection that never leaves this machine."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_base(base: str, source: str | None = None, backend: str = "fireworks") -> str:
    """The API base without a trailing slash; BatchConfigError (one line) unless it is https://,
    or http:// to a loopback host. The message shows scheme, host and port only. ``backend`` names
    the variable and the default (``config.engines.BATCH_BACKENDS``)."""
    spec = BATCH_BACKENDS[backend]
    var, default = spec.base_env, spec.default_base
    where = f" (from {source})" if source else ""
    raw = base.strip().rstrip("/")
    try:
        parts = urlsplit(raw)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        raise BatchConfigError(f"{var}{where} is not a valid URL") from None
    scheme = parts.scheme.lower()
    shown = f"{scheme}://{host}" + (f":{port}" if port else "")
    if scheme not in ("https", "http") or not host:
        raise BatchConfigError(f"{var}{where} must be an https:// URL such as {default}")
    if parts.username or parts.password:
        raise BatchConfigError(f"{var}{where} must not contain a user name or password")
    if scheme == "http" and not is_loopback_host(host):
        raise BatchConfigError(
            f"{var}{where} is {shown}: it must use https:// (http:// only to a loopback host such as"
            " 127.0.0.1), or the API key would travel in clear")
    return raw


def api_base_notice(env_file: str | None = None, backend: str = "fireworks") -> tuple[str, str | None] | None:
    """For ``doctor`` and ``plan``: (line, error) when the provider's API base variable is set to something
    other than the default, else None. ``error`` is the one-line refusal when the base would be refused."""
    spec = BATCH_BACKENDS[backend]
    var, default, label = spec.base_env, spec.default_base, spec.label.split(" batch")[0]
    label = label[:1].upper() + label[1:]
    base = get_setting(var, env_file=env_file) if var else None
    if not base or base.strip().rstrip("/") == default:
        return None
    source = setting_source(var, env_file)
    try:
        shown = check_api_base(base, source, backend)
    except BatchConfigError as exc:
        return f"{label} API base from {source} is not the default {default}", str(exc)
    return f"{label} API base: {shown} (from {source}; the default is {default})", None


@dataclass(frozen=True)
class Credentials:
    api_key: _Secret
    account: str
    api_base: str = DEFAULT_API_BASE

    def __post_init__(self) -> None:  # every client, however built, talks https (or to loopback)
        object.__setattr__(self, "api_base", check_api_base(self.api_base))

    @classmethod
    def from_env(cls, env_file: str | None = None) -> Credentials:
        """FIREWORKS_API_KEY, FIREWORKS_ACCOUNT_ID, optional FIREWORKS_API_BASE (environment, then .env)."""
        key = get_setting("FIREWORKS_API_KEY", env_file=env_file)
        account = get_setting("FIREWORKS_ACCOUNT_ID", env_file=env_file)
        if not key:
            raise BatchConfigError("FIREWORKS_API_KEY is not set (environment or .env)")
        if not account:
            raise BatchConfigError("FIREWORKS_ACCOUNT_ID is not set (environment or .env)")
        base = get_setting("FIREWORKS_API_BASE", env_file=env_file) or DEFAULT_API_BASE
        base = check_api_base(base, setting_source("FIREWORKS_API_BASE", env_file))  # before any key is sent
        return cls(_Secret(key), account, base)


@dataclass(frozen=True)
class KeyCredentials:
    """A provider that needs a key and an API base alone (OpenAI: OPENAI_API_KEY, OPENAI_BASE_URL)."""

    api_key: _Secret
    api_base: str
    backend: str = "openai"

    def __post_init__(self) -> None:  # every client, however built, talks https (or to loopback)
        object.__setattr__(self, "api_base", check_api_base(self.api_base, backend=self.backend))

    @classmethod
    def from_env(cls, backend: str = "openai", env_file: str | None = None) -> KeyCredentials:
        """The key and base named by the provider's registry row (environment, then .env)."""
        spec = BATCH_BACKENDS[backend]
        key = get_setting(spec.key_env, env_file=env_file)
        if not key:
            raise BatchConfigError(f"{spec.key_env} is not set (environment or .env)")
        base = get_setting(spec.base_env, env_file=env_file) or spec.default_base
        base = check_api_base(base, setting_source(spec.base_env, env_file), backend)  # before any key is sent
        return cls(_Secret(key), base, backend)


def load_sdk(backend: str) -> Any:
    """The provider's official SDK (its registry row's optional extra); one line naming the install
    command when it is missing. The readiness check and each provider's client import it this way."""
    spec = BATCH_BACKENDS[backend]
    try:
        return importlib.import_module(spec.sdk)
    except ImportError:
        raise BatchConfigError(spec.sdk_hint) from None


def check_backend_ready(backend: str) -> None:
    """Before a paid run is written: the provider's credentials (and SDK) are there; BatchServiceError if not."""
    spec = BATCH_BACKENDS[backend]
    if spec.sdk:
        load_sdk(backend)  # the optional extra must be there before anything is written
    if spec.account_env:
        Credentials.from_env()
    else:
        KeyCredentials.from_env(backend)
