"""Benjamini–Hochberg q-values (step-up), and applying them to every test in significance.json.

Why our own 10 lines: the reference project ran the running minimum the wrong way (p = 0.219 became
q = 5.5e-10). q_(i) = min over j >= i of p_(j) m / j, capped at 1, with p sorted ascending: identical to
statsmodels.stats.multitest.multipletests(method="fdr_bh")[1] (the tests check this).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def bh_qvalues(p_values: np.ndarray | list[float]) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def all_subgroups(block: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every subgroup BLOCK of a BLOCK: its datasets, then each ``stats.subgroups`` field's groups."""
    for kind in (block.get("subgroups") or {}).values():
        yield from (kind or {}).values()


def iter_tests(block: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every dict holding a test in a BLOCK: mcnemar, each metric's wilcoxon, then each subgroup's."""
    if isinstance(block.get("mcnemar"), dict):
        yield block["mcnemar"]
    for metric in (block.get("metrics") or {}).values():
        yield metric["wilcoxon"]
    for sub in all_subgroups(block):
        yield from iter_tests(sub)


def apply_fdr(results: dict[str, dict[str, dict[str, Any]]], enabled: bool) -> int:
    """Fill ``q_value`` next to every p-value in ``results`` (in place); returns the family size."""
    tests = [t for per_type in results.values() for block in per_type.values() for t in iter_tests(block)]
    family = [(t, t.get("p_exact", t.get("p_value"))) for t in tests]
    family = [(t, p) for t, p in family if p is not None]
    if not enabled:
        return 0
    q = bh_qvalues([p for _, p in family])
    for (test, _), value in zip(family, q, strict=True):
        test["q_value"] = float(value)
    return len(family)
