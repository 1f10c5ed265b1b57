"""Each engine and batch provider owns its behaviour (issue 24): no module outside the engine rooms
(``workers/engines/``, ``workers/fireworks/``) and their registry (``config/engines.py``) branches on an
engine or batch-backend name.

Why a test: a branch on ``== "ollama"`` in telemetry or the planner means a new engine must touch that
module too; the registry's facts and the engine's own methods answer instead. The scan reads the source
with ``ast``, so strings in docstrings, messages and config values are not branches.
"""

from __future__ import annotations

import ast
from pathlib import Path

from config.engines import BATCH_BACKENDS, ENGINE_NAMES
from tests.support.paths import ROOT

PACKAGES = ("config", "producer", "workers", "scoring", "telemetry", "tools")
ROOMS = ("workers/engines/", "workers/fireworks/", "config/engines.py")
NAMES = frozenset(ENGINE_NAMES) | frozenset(BATCH_BACKENDS) | frozenset(f"{b}_dry_run" for b in BATCH_BACKENDS)
# (file, literal, kind): the same word used for something that is not an engine; each with its reason.
NOT_ENGINES = {
    ("config/llama_cpp_import.py", "llama_cpp", "comparison"): "ImportError.name: the Python module, not the engine",
    ("producer/runs/manifests.py", "dry_run", "dict keyed by engine name"): "trial_manifest.json's dry_run field",
    ("producer/imports/write.py", "dry_run", "dict keyed by engine name"): "an imported run's manifest and run state dry_run field",
}


def _is_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES


def _names_in(nodes: list[ast.AST]) -> str:
    return ",".join(sorted({n.value for node in nodes for n in ast.walk(node) if _is_name(n)}))


def _holds_name(node: ast.AST) -> bool:
    """A literal name, or a tuple/list/set (or frozenset(...)) literal that holds one."""
    if _is_name(node):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_name(elt) for elt in node.elts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("frozenset", "set"):
        return any(_holds_name(arg) for arg in node.args)
    return False


def offenders_in(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, kind, names) for every branch on an engine or batch-backend name in one module."""
    found: list[tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(_holds_name(n) for n in [node.left, *node.comparators]):
            found.append((node.lineno, "comparison", _names_in([node.left, *node.comparators])))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "endswith") and any(_holds_name(a) for a in node.args)):
            found.append((node.lineno, node.func.attr, _names_in(node.args)))
        elif isinstance(node, ast.match_case) and any(_is_name(n) for n in ast.walk(node.pattern)):
            found.append((node.pattern.lineno, "match/case", _names_in([node.pattern])))
        elif isinstance(node, ast.Dict) and any(k is not None and _is_name(k) for k in node.keys):
            found.append((node.lineno, "dict keyed by engine name", _names_in([k for k in node.keys if k is not None])))
        elif (isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
              and isinstance(node.value, (ast.Tuple, ast.List, ast.Set, ast.Call)) and _holds_name(node.value)):
            found.append((node.lineno, "table of engine names", _names_in([node.value])))
    return sorted(set(found))


def offenders(root: Path = ROOT) -> list[str]:
    out: list[str] = []
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(ROOMS):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
            out += [f"{rel}:{line} ({kind}: {names})" for line, kind, names in offenders_in(tree)
                    if (rel, names, kind) not in NOT_ENGINES]
    return out


def test_no_branch_on_an_engine_name_outside_the_engine_rooms() -> None:
    found = offenders()
    assert found == [], f"{len(found)} branches on an engine name outside the rooms:\n" + "\n".join(found)


def test_the_scan_sees_each_kind_of_branch() -> None:
    """The scan must not pass by seeing nothing: each form it looks for is found in a sample."""
    sample = ast.parse(
        'a = x == "ollama"\n'
        'b = y in ("llama_cpp", "dry_run")\n'
        'c = str(e).startswith("fireworks")\n'
        'd = {"ollama": f}\n'
        'E = frozenset({"llama_cpp"})\n'
        'match z:\n    case "openai_compat":\n        pass\n'
        'ok = {"local_engine": "ollama"}\n'
        'fine = "dry_run" if dry else name\n'
    )
    assert [line for line, _, _ in offenders_in(sample)] == [1, 2, 3, 4, 5, 7]


def test_each_exception_still_matches_something() -> None:
    """An exception whose line went away must be deleted, or it would hide a future branch."""
    seen = {(path.relative_to(ROOT).as_posix(), names, kind)
            for path in (ROOT / rel for rel, _, _ in NOT_ENGINES)
            for _, kind, names in offenders_in(ast.parse(path.read_text(encoding="utf-8")))}
    assert set(NOT_ENGINES) <= seen, set(NOT_ENGINES) - seen
