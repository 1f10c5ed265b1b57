"""The unit tier's rule holds: a test marked ``unit`` that starts a process, opens a network socket or
imports llama.cpp fails with one line naming the rule; an unmarked test may do all of them."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.unit_guard import RULE

refused = pytest.raises(pytest.fail.Exception, match="unit tier rule")


@pytest.mark.unit
def test_a_unit_test_cannot_start_a_subprocess() -> None:
    with refused as info:
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    assert str(info.value).endswith(RULE) and "\n" not in str(info.value)
    with refused:
        os.system("true")


@pytest.mark.unit
def test_a_unit_test_cannot_start_a_worker_process() -> None:
    with refused:
        multiprocessing.get_context("spawn").Process(target=print).start()


@pytest.mark.unit
def test_a_unit_test_cannot_open_a_network_socket() -> None:
    for method, address in (("bind", ("127.0.0.1", 0)), ("connect", ("127.0.0.1", 9)),
                            ("connect_ex", ("127.0.0.1", 9))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, refused:
            getattr(sock, method)(address)


@pytest.mark.unit
@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX sockets here")
def test_a_unit_test_may_use_a_unix_socket(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(tmp_path / "s"))


@pytest.mark.unit
def test_a_unit_test_cannot_load_llama_cpp() -> None:
    from config.llama_cpp_import import import_llama_cpp

    with refused:
        import_llama_cpp()  # the project's one import of it; its `except Exception` cannot hide the rule


def test_an_unmarked_test_may_start_a_subprocess() -> None:
    """The rule binds the unit tier only (this test is not marked, so it is not in `pytest -m unit`)."""
    proc = subprocess.run([sys.executable, "-c", "print('ok')"], capture_output=True, text=True,
                          encoding="utf-8", timeout=60)
    assert proc.stdout.strip() == "ok"
