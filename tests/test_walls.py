"""The walls between the rooms hold: ``lint-imports`` keeps every contract in ``.importlinter`` and every
module of ``producer/`` has a room there (docs/architecture.md, "Walls"). No import cycle at all:
tests/test_import_cycles.py.

Why a test: `.ci/run` runs the README's test command, so a contract broken by a new import fails CI
here, not in a review.
"""

from __future__ import annotations

import configparser
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import cli_env
from tests.support.paths import ROOT

ROOTS = ("config", "producer", "workers", "scoring", "telemetry")


def _config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    assert parser.read(ROOT / ".importlinter", encoding="utf-8"), ".importlinter is missing"
    return parser


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith(";")]


def test_lint_imports_keeps_every_contract():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "lint-imports is not installed next to this Python: pip install -e .[dev]"
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"Contracts: \d+ kept, 0 broken", proc.stdout), proc.stdout


@pytest.mark.unit
def test_every_producer_module_has_a_room_and_queue_is_no_package():
    cfg = _config()
    roots = _lines(cfg["importlinter"]["root_packages"])
    assert sorted(roots) == sorted(ROOTS)
    assert not (ROOT / "queue" / "__init__.py").exists()  # docs/architecture.md fact 1
    placed = _placed(cfg["importlinter:contract:layers"]["layers"])
    modules = {f"producer.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "producer")])}
    assert modules - placed == set(), "place each new producer module or package in a layer of .importlinter"


def _placed(layers: str) -> set[str]:
    return {name.strip() for layer in _lines(layers) for name in re.split(r"[:|]", layer)}


@pytest.mark.unit
def test_producer_layers_are_package_lines():
    """Each floor is a package: a module dropped loose into producer/ has no room, and a layer names no
    module inside a floor (a line lists packages, not their modules)."""
    placed = _placed(_config()["importlinter:contract:layers"]["layers"])
    loose = {m.name for m in pkgutil.iter_modules([str(ROOT / "producer")]) if not m.ispkg}
    assert loose == {"__main__", "huey_app", "huey_main"}, "a new producer module belongs in one of its floors"
    inside = {name for name in placed if name.startswith("producer.") and name.count(".") > 1}
    assert inside == set(), f"layers name packages, not modules inside them: {sorted(inside)}"


@pytest.mark.unit
def test_every_workers_module_has_a_place_in_the_workers_order():
    """The order inside workers (engines never import a task module) covers every module of workers/."""
    cfg = _config()["importlinter:contract:workers-layers"]
    assert _lines(cfg["containers"]) == ["workers"]
    placed = _placed(cfg["layers"])
    names = {m.name for m in pkgutil.iter_modules([str(ROOT / "workers")])}
    packages = {m.name for m in pkgutil.iter_modules([str(ROOT / "workers")]) if m.ispkg}
    for package in packages - placed:  # the batch runner and providers: placed module by module
        names |= {f"{package}.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "workers" / package)])}
        names.discard(package)
    assert names - placed == set(), "place each new workers module in the workers-layers contract"
