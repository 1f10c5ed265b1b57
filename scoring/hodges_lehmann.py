"""Hodges–Lehmann estimator of a paired shift: the median of the Walsh averages (d_i + d_j)/2, i <= j.

Exact for every n without building the n(n+1)/2 averages (112 million for n = 15,000):
- few distinct values (per-item means over K samples take at most 2K+1 values): weighted Walsh
  averages over the m distinct values, O(m^2);
- otherwise: exact selection of the k-th smallest pairwise sum in the implicit sorted matrix
  (random pivot among the remaining candidates, rows counted with searchsorted plus an exact
  float fix-up), O(n log n) per step, enumerating once few candidates remain.
"""

from __future__ import annotations

import numpy as np

DISTINCT_LIMIT = 1500
ENUMERATE_LIMIT = 400_000


def _hl_distinct(values: np.ndarray, counts: np.ndarray) -> float:
    m = len(values)
    ia, ib = np.triu_indices(m)
    sums = values[ia] + values[ib]
    weights = np.where(ia == ib, counts[ia] * (counts[ia] + 1) // 2, counts[ia] * counts[ib]).astype(np.int64)
    order = np.argsort(sums, kind="stable")
    sums, cum = sums[order], np.cumsum(weights[order])
    total = int(cum[-1])
    lo = sums[np.searchsorted(cum, (total + 1) // 2)]  # k-th smallest, k 1-based: first cum >= k
    hi = sums[np.searchsorted(cum, total // 2 + 1)]
    return float(lo + hi) / 4.0 if total % 2 == 0 else float(lo) / 2.0


def _upper_counts(s: np.ndarray, x: float) -> np.ndarray:
    """Per row i: #{j : s[i] + s[j] <= x}, exact for float sums (monotone in j)."""
    n = len(s)
    ub = np.searchsorted(s, x - s, side="right")
    while True:
        up = (ub < n) & (s + s[np.minimum(ub, n - 1)] <= x)
        if not up.any():
            break
        ub = ub + up
    while True:
        down = (ub > 0) & (s + s[np.maximum(ub - 1, 0)] > x)
        if not down.any():
            break
        ub = ub - down
    return ub


def _kth_pair_sum(s: np.ndarray, k: int, rng: np.random.Generator) -> float:
    """k-th smallest (1-based) of s[i] + s[j], i <= j, for sorted s."""
    n = len(s)
    rows = np.arange(n)
    lo_ub = rows.copy()  # row i: candidates j in [lo_ub[i], hi_ub[i]) with j >= i
    hi_ub = np.full(n, n)
    below = 0  # pairs known to be smaller than every candidate
    while True:
        sizes = hi_ub - lo_ub
        total = int(sizes.sum())
        if total <= ENUMERATE_LIMIT:
            row_idx = np.repeat(rows, sizes)
            offsets = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            cand = s[row_idx] + s[lo_ub[row_idx] + offsets]
            return float(np.partition(cand, k - below - 1)[k - below - 1])
        r = int(rng.integers(total))
        row = int(np.searchsorted(np.cumsum(sizes), r, side="right"))
        col = lo_ub[row] + (r - int(np.cumsum(sizes)[row - 1] if row else 0))
        pivot = s[row] + s[col]
        ub = np.maximum(_upper_counts(s, pivot), rows)
        count = int((ub - rows).sum())
        if count >= k:
            hi_ub = np.minimum(hi_ub, ub)
            # strictly-below part: drop the pivot's ties only when they are not needed
            lt_ub = np.maximum(_upper_counts(s, np.nextafter(pivot, -np.inf)), rows)
            if int((lt_ub - rows).sum()) < k:
                return float(pivot)
        else:
            below = count
            lo_ub = np.maximum(lo_ub, ub)


def hodges_lehmann(d: np.ndarray, seed: int = 0) -> float | None:
    """Median of Walsh averages of ``d`` (NaN dropped); None for an empty input. Exact."""
    d = np.asarray(d, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return None
    values, counts = np.unique(d, return_counts=True)
    if len(values) <= DISTINCT_LIMIT:
        return _hl_distinct(values, counts.astype(np.int64))
    s = np.sort(d)
    n = len(s)
    total = n * (n + 1) // 2
    rng = np.random.default_rng(seed)
    lo = _kth_pair_sum(s, (total + 1) // 2, rng)
    if total % 2:
        return lo / 2.0
    hi = _kth_pair_sum(s, total // 2 + 1, rng)
    return (lo + hi) / 4.0
