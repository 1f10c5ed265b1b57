"""No import cycle among the project's modules, imports inside functions included (issue 24).

Why: a cycle ties modules together so that neither can be read, tested or moved alone, and the
imports that hold it are hidden inside functions. Huey's documented layout breaks the one the queue
had: the instance in a module that imports no task (``producer.huey_app``), the task modules import
it, and a main module imports both (``producer.huey_main``, what ``huey_consumer producer.huey``
loads); reconcile, which sends task messages, lives with the tasks (``workers.reconcile``).

grimp builds the graph from every import statement, those inside functions included.
"""

from __future__ import annotations

import grimp
import pytest

ROOTS = ("config", "producer", "workers", "scoring", "telemetry")


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*ROOTS, include_external_packages=False, cache_dir=None)


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Groups of more than one module that import each other, directly or not (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(edges[start])))]
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
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def _describe(graph: grimp.ImportGraph, group: list[str]) -> str:
    """The group and each import that holds it (line numbers: the ones inside functions show)."""
    members = set(group)
    lines = [" <-> ".join(group)]
    for importer in group:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            details = graph.get_import_details(importer=importer, imported=imported)
            where = ", ".join(f"line {d['line_number']}: {d['line_contents']}" for d in details)
            lines.append(f"    {importer} -> {imported} ({where})")
    return "\n".join(lines)


pytestmark = pytest.mark.unit


def test_no_import_cycle_among_project_modules():
    graph = _graph()
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    groups = strongly_connected(edges)
    assert not groups, "import cycles:\n" + "\n".join(_describe(graph, g) for g in groups)


def test_the_search_finds_a_cycle_through_three_modules():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(edges) == [["a", "b", "c"]]
