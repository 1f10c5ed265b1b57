"""Test modules import shared helpers from tests/support/, never from conftest or another test module.

Why: conftest is loaded by pytest as a plugin (importing it again makes a second copy of its fixtures),
and importing a ``test_*`` module ties two test files together (and its tests get collected into the
importer's namespace). tests/support/ is the one home of shared helpers.
"""

from __future__ import annotations

import ast

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.unit


def forbidden_imports(source: str) -> list[str]:
    """Every import of conftest or of a ``test_*`` module in ``source``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names = [base] if base else []
            names += [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
        else:
            continue
        found += [name for name in names
                  if any(part == "conftest" or part.startswith("test_") for part in name.split("."))]
    return found


def test_no_test_or_support_module_imports_conftest_or_a_test_module() -> None:
    modules = sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
    offenders = {p.relative_to(ROOT).as_posix(): bad for p in modules
                 if (bad := forbidden_imports(p.read_text(encoding="utf-8")))}
    assert not offenders, f"import helpers from tests/support/ instead: {offenders}"


@pytest.mark.parametrize("line", ["from tests.conftest import ROOT", "import conftest",
                                  "from tests.test_vram import smollm2_gguf", "from tests import test_vram",
                                  "def f():\n    from tests.test_fireworks_flow import KEY"])
def test_the_check_catches_each_form(line: str) -> None:
    assert forbidden_imports(line)


def test_the_check_allows_support_imports() -> None:
    assert not forbidden_imports("from tests.support.paths import ROOT\nfrom tests.support import cli\n")
