"""An import inside a function says why it is not at the top (docs/architecture.md, "Walls").

A project module imported inside a function hides a dependency from the reader and can hide an import
cycle, so it is allowed only with a reason on its line: ``# lazy: <why>`` (an optional or heavy
dependency such as pandas or an engine, a module that opens the queue, a start path kept light).
``producer/cli/`` is exempt: each command's module loads only when it is called, for ``--help`` speed
(producer/cli/__init__.py). Third-party and standard-library imports (optional or platform
dependencies: llama_cpp, pynvml, msvcrt, ...) are not checked.

Why a test: a new inner import without a reason fails here, not in a review.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.unit

PACKAGES = ("config", "producer", "workers", "scoring", "telemetry")
EXEMPT = ("producer/cli/",)  # --help speed: the CLI loads a command's module when it is called
REASON = re.compile(r"#.*\blazy:\s*\S")


def _imported(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """Dotted names the statement imports; a relative import resolves inside ``package``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        return [package]  # `from . import x` / `from .x import y`: always a project module
    return [node.module or ""]


def _function_imports(path: Path, root: Path) -> list[tuple[int, int, str]]:
    """(first line, last line, module) of each project-module import inside a function of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = path.relative_to(root).parts[0]
    found: dict[int, tuple[int, int, str]] = {}
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in _imported(node, package):
                    if name.split(".")[0] in PACKAGES:
                        found[node.lineno] = (node.lineno, node.end_lineno or node.lineno, name)
    return sorted(found.values())


def offenders(root: Path) -> list[str]:
    """One line per function-level import of a project module that carries no ``# lazy:`` reason."""
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(EXEMPT):
                continue
            lines = path.read_text(encoding="utf-8").splitlines()
            for first, last, module in _function_imports(path, root):
                # the reason may sit on any line of a wrapped `from x import (a, b)`
                if not any(REASON.search(line) for line in lines[first - 1:last]):
                    out.append(f"{rel}:{first} imports {module} inside a function without '# lazy: why'")
    return out


def test_every_function_level_import_of_a_project_module_says_why():
    bad = offenders(ROOT)
    assert not bad, "move these to the top of the module or say why they wait:\n" + "\n".join(bad)


def test_the_check_finds_an_inner_import_without_a_reason(tmp_path: Path):
    pkg = tmp_path / "producer"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "cli" / "cmd_x.py").write_text("def run():\n    from producer import plan\n", encoding="utf-8")
    (pkg / "x.py").write_text(
        "import json\n\n"
        "def f():\n"
        "    import pandas\n"
        "    from producer import plan\n"
        "    from . import trials  # noqa: F401\n"
        "    from workers.tasks import (  # lazy: opens the queue\n"
        "        drain,\n"
        "    )\n"
        "    from config.errors import (\n"
        "        ConfigError,  # lazy: --help speed\n"
        "    )\n"
        "    return json, pandas, plan, trials, drain, ConfigError\n",
        encoding="utf-8",
    )
    assert offenders(tmp_path) == [
        "producer/x.py:5 imports producer inside a function without '# lazy: why'",
        "producer/x.py:6 imports producer inside a function without '# lazy: why'",
    ]
