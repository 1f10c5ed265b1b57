"""The unit tier's rule, enforced: a test marked ``unit`` starts no process, opens no network socket and
loads no llama.cpp.

Why enforce it: ``pytest -m unit`` promises a run of under a minute; a marker alone drifts as soon as a
"unit" test starts ``python -m producer`` or a server. While the rule is on, each of those calls fails
the test with one line naming the rule (``pytest.fail``: a BaseException, so the code under test cannot
swallow it in an ``except Exception``). Only the calls are blocked; reading files and SQLite are fine.
"""

from __future__ import annotations

import multiprocessing.process
import os
import socket
import subprocess
import sys
from importlib.machinery import ModuleSpec
from typing import Any, NoReturn

import pytest
import urllib3  # noqa: F401 - imported now: its import probes IPv6 with a socket bind (see enforce_unit_rule)

RULE = ("unit tier rule: a test marked `unit` starts no subprocess, opens no network socket and loads no "
        "llama.cpp; drop the `unit` marker from this test (setup.cfg [tool:pytest] markers)")
_OS_STARTERS = ("system", "fork", "forkpty", "posix_spawn", "posix_spawnp", "startfile")


def _refuse(what: str) -> NoReturn:
    pytest.fail(f"{what}: {RULE}")


class _NoLlamaCpp:
    """A meta-path finder that refuses llama_cpp (the native library and its model loads)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name == "llama_cpp" or name.startswith("llama_cpp."):
            _refuse(f"import {name}")
        return None


def enforce_unit_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until ``monkeypatch`` undoes it: process starts, non-AF_UNIX bind/connect and llama_cpp imports fail.

    Libraries that open a socket while being imported (urllib3's IPv6 probe) are imported by this module,
    before any test, so a unit test's result does not depend on which test imported them first."""

    def no_child(self: subprocess.Popen, args: Any, *rest: Any, **kw: Any) -> NoReturn:
        _refuse(f"subprocess {args!r}")

    monkeypatch.setattr(subprocess.Popen, "_execute_child", no_child)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start",
                        lambda self: _refuse(f"multiprocessing start of {self.name}"))
    for name in _OS_STARTERS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, lambda *a, _name=name, **k: _refuse(f"os.{_name}{a!r}"))

    unix = getattr(socket, "AF_UNIX", None)
    for method in ("bind", "connect", "connect_ex"):
        real = getattr(socket.socket, method)

        def guarded(self: socket.socket, address: Any, _real: Any = real, _method: str = method) -> Any:
            if self.family != unix:
                _refuse(f"socket {_method} {address!r}")
            return _real(self, address)

        monkeypatch.setattr(socket.socket, method, guarded)

    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoLlamaCpp(), *sys.meta_path])
