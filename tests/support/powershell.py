"""Reading the PowerShell scripts without PowerShell: tree-sitter's grammar, the parse tree, the task table.

Why shared: the PowerShell, PS 5.1, bootstrap and docs-command tests all read tools/*.ps1 this way.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from tests.support.paths import ROOT

TOOLS = ROOT / "tools"
PS_SCRIPTS = sorted(TOOLS.glob("*.ps1"))


def ps_parser() -> Any:
    """tree-sitter's PowerShell parser (the test skips when the language pack is missing)."""
    language_pack = pytest.importorskip("tree_sitter_language_pack")
    return language_pack.get_parser("powershell")


def walk(node: Any) -> Iterator[Any]:
    """``node`` and every node under it, depth first."""
    yield node
    for child in node.children:
        yield from walk(child)


def syntax_problems(source: bytes) -> list[str]:
    """ERROR and MISSING nodes of the parse, as 'line:col: text' (empty when the script parses)."""
    tree = ps_parser().parse(source)
    problems = []
    for node in walk(tree.root_node):
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            text = source[node.start_byte : node.end_byte][:60].decode("utf-8", "replace")
            problems.append(f"{row + 1}:{col + 1}: {node.type} {'(missing)' if node.is_missing else ''} {text!r}")
    return problems


def node_text(source: bytes, node: Any) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8")


@cache
def task_table() -> dict[str, list[str]]:
    """Task name -> the literal Python arguments of its ``Args`` block, from the parse tree.

    Variables (``$Config``) are kept as their names so a test can check what is passed where.
    """
    source = (TOOLS / "tasks.ps1").read_bytes()
    tree = ps_parser().parse(source)
    tasks: dict[str, list[str]] = {}
    for entry in walk(tree.root_node):
        if entry.type != "hash_entry" or node_text(source, entry.children[0]) != "Args":
            continue
        task_entry = entry.parent
        while task_entry is not None and task_entry.type != "hash_entry":
            task_entry = task_entry.parent
        assert task_entry is not None, "an Args block outside the task table"
        name = node_text(source, task_entry.children[0])
        argv = []
        for node in walk(entry.children[2]):
            if node.type in ("expandable_string_literal", "verbatim_string_literal"):
                argv.append(node_text(source, node)[1:-1])
            elif node.type == "variable" and node.parent.type != "expandable_string_literal":
                argv.append(node_text(source, node))
        tasks[name] = argv
    return tasks
