"""The walls between the rooms hold: ``lint-imports`` keeps every contract in ``.importlinter``, every
module of ``producer/`` has a room there, and the only import cycles are the task registration and the
debts listed below (docs/architecture.md, "Walls").

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

import grimp
import pytest

from tests.support.cli import cli_env
from tests.support.paths import ROOT

ROOTS = ("config", "producer", "workers", "scoring", "telemetry")
# Cycles still to break (each a TODO(issue 15)); empty: the registration is the only one.
KNOWN_CYCLES: set[frozenset[str]] = set()
REGISTRATION = ("producer.huey_app", "producer.reconcile")


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
    placed = {name.strip() for layer in _lines(cfg["importlinter:contract:layers"]["layers"])
              for name in re.split(r"[:|]", layer)}
    modules = {f"producer.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "producer")])}
    assert modules - placed == set(), "place each new producer module in a layer of .importlinter"


@pytest.mark.unit
def test_the_only_import_cycles_are_the_registration_and_the_listed_debts():
    graph = grimp.build_graph(*ROOTS, cache_dir=None)
    allowed = set()
    for line in _lines(_config()["importlinter:contract:layers"]["ignore_imports"]):
        importer, imported = (part.strip() for part in line.split("->"))
        if importer in REGISTRATION:
            allowed.add((importer, imported))
    edges = {m: {i for i in graph.find_modules_directly_imported_by(m) if (m, i) not in allowed}
             for m in graph.modules}
    assert _cycles(edges) == KNOWN_CYCLES


def _cycles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.add(frozenset(group))
    return found
