"""Fixtures for every test: an isolated queue folder, and the unit tier's rule for tests marked ``unit``.

Only fixtures and hooks live here; shared helpers live in tests/support/ (test modules import those,
never this file).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.unit_guard import enforce_unit_rule


@pytest.fixture(autouse=True)
def isolated_queue(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test's queue (and every child process's) is a temp dir: no test touches the repo's queue/."""
    queue_dir = tmp_path_factory.mktemp("queue")
    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(queue_dir))
    yield queue_dir


@pytest.fixture(autouse=True)
def unit_tier_rule(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test marked ``unit`` fails on its first subprocess, network socket or llama.cpp load."""
    if request.node.get_closest_marker("unit") is not None:
        enforce_unit_rule(monkeypatch)
