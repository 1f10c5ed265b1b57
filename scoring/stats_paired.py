"""Paired statistics on per-item deltas d = treatment - control (CONTRACT section 7, ``metrics``, ``mcnemar``).

Why this shape: bootstrap and permutation are the slow part of the reference implementation (20 s for
15,000 items). Here both are exact in distribution and vectorised:
- bootstrap: resampling n items with replacement only matters through how often each *distinct*
  delta value is drawn, a Multinomial(n, frequencies) draw, so metrics with few distinct values (per-item
  means over K samples) need B x m draws, not B x n; other metrics resample index matrices in chunks;
- sign-flip permutation: the flipped sum of the c_v items sharing value v is v (2 Binomial(c_v, 1/2) - c_v);
  with many distinct values, random sign bits are drawn as bytes and summed with a matrix product.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

from scoring.hodges_lehmann import hodges_lehmann

FEW_DISTINCT = 64
CHUNK_CELLS = 2_000_000
HALDANE = 0.5


def bootstrap_means(d: np.ndarray, b: int, rng: np.random.Generator) -> np.ndarray:
    """B bootstrap means of ``d`` (paired percentile bootstrap resamples items)."""
    n = len(d)
    values, counts = np.unique(d, return_counts=True)
    if len(values) <= max(FEW_DISTINCT, n // 30):  # a binomial draw costs ~30 index draws
        draws = rng.multinomial(n, counts / n, size=b)
        return draws @ values / n
    out = np.empty(b)
    chunk = max(1, CHUNK_CELLS // n)
    for start in range(0, b, chunk):
        rows = min(chunk, b - start)
        idx = rng.integers(0, n, size=(rows, n), dtype=np.uint16 if n <= 2**16 else np.int64)
        out[start:start + rows] = np.take(d, idx).sum(axis=1) / n
    return out


def bootstrap_ci(d: np.ndarray, b: int, rng: np.random.Generator, level: float = 0.95) -> list[float] | None:
    if len(d) == 0:
        return None
    means = bootstrap_means(d, b, rng)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def signflip_sums(d: np.ndarray, r: int, rng: np.random.Generator) -> np.ndarray:
    """R sums of d_i * s_i with independent fair signs s_i."""
    nz = d[d != 0]
    values, counts = np.unique(nz, return_counts=True)
    if len(values) <= max(FEW_DISTINCT, len(nz) // 40):
        heads = rng.binomial(counts, 0.5, size=(r, len(values)))
        return (2 * heads - counts) @ values
    n = len(nz)
    out = np.empty(r)
    chunk = max(1, CHUNK_CELLS // n)
    total = nz.sum()
    for start in range(0, r, chunk):
        rows = min(chunk, r - start)
        raw = np.frombuffer(rng.bytes(rows * ((n + 7) // 8)), dtype=np.uint8).reshape(rows, -1)
        bits = np.unpackbits(raw, axis=1, count=n).astype(np.float64)
        out[start:start + rows] = 2 * (bits @ nz) - total
    return out


def perm_p_value(d: np.ndarray, r: int, rng: np.random.Generator) -> float | None:
    """Two-sided sign-flip permutation p of the mean delta, (1 + #{|T*| >= |T|}) / (R + 1)."""
    if len(d) == 0:
        return None
    observed = abs(float(d.sum()))
    sums = np.abs(signflip_sums(d, r, rng))
    tol = 1e-9 * max(1.0, observed)
    return float((1 + np.count_nonzero(sums >= observed - tol)) / (r + 1))


SCIPY_PERMUTATION_MAX_N = 13  # scipy.stats.wilcoxon's "auto": exact sign-flip enumeration up to here


def _wilcoxon_enumerated(d: np.ndarray) -> tuple[float, float]:
    """What scipy.stats.wilcoxon(method="auto") computes for n <= 13 with zeros or ties (an exact
    permutation test over all 2^n sign flips), vectorised: scipy evaluates the statistic per flip."""
    nz = d[d != 0]
    ranks = sps.rankdata(np.abs(nz))
    observed = float(ranks[nz > 0].sum())
    total = float(ranks.sum())
    flips = (np.arange(2 ** len(nz))[:, None] >> np.arange(len(nz))) & 1
    null = flips @ ranks
    gamma = abs(np.finfo(float).eps * 100 * observed)
    less = np.count_nonzero(null <= observed + gamma) / len(null)
    greater = np.count_nonzero(null >= observed - gamma) / len(null)
    return min(observed, total - observed), float(min(1.0, 2 * min(less, greater)))


def wilcoxon_test(d: np.ndarray) -> dict[str, Any]:
    """scipy.stats.wilcoxon (zero_method "wilcox", two-sided). All-zero deltas: W = 0, p = 1.0 (no evidence)."""
    if len(d) == 0:
        return {"W": None, "p_value": None, "q_value": None}
    nz = d[d != 0]
    if nz.size == 0:
        return {"W": 0.0, "p_value": 1.0, "q_value": None}
    ties = np.unique(np.abs(nz)).size < nz.size
    if len(d) <= SCIPY_PERMUTATION_MAX_N and (ties or nz.size < d.size):
        w, p = _wilcoxon_enumerated(d)
        return {"W": w, "p_value": p, "q_value": None}
    res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return {"W": float(res.statistic), "p_value": float(res.pvalue), "q_value": None}


def cohens_d(d: np.ndarray) -> float | None:
    """Paired standardised mean difference d_z = mean(d) / sd(d, n-1); None when sd is 0 or n < 2."""
    if len(d) < 2:
        return None
    sd = float(np.std(d, ddof=1))
    return float(np.mean(d)) / sd if sd > 0 else None


def cliffs_delta(treatment: np.ndarray, control: np.ndarray) -> float | None:
    """P(T > C) - P(T < C) over all treatment x control item pairs (O(n log n) via sorting)."""
    if len(treatment) == 0 or len(control) == 0:
        return None
    c = np.sort(control)
    less = np.searchsorted(c, treatment, side="left").sum()  # control values below each treatment
    greater = (len(c) - np.searchsorted(c, treatment, side="right")).sum()
    return float((less - greater) / (len(treatment) * len(control)))


def mcnemar(control_right: np.ndarray, treatment_right: np.ndarray) -> dict[str, Any]:
    """Exact McNemar on right/wrong pairs. OR = b / c with a Wald CI on log OR; Haldane +0.5 to b and c
    when either is 0 (OR, CI null when both are 0)."""
    b = int(np.count_nonzero(~control_right & treatment_right))
    c = int(np.count_nonzero(control_right & ~treatment_right))
    p = 1.0 if b + c == 0 else float(sps.binomtest(b, b + c, 0.5).pvalue)
    if b + c == 0:
        odds, ci = None, None
    else:
        bb, cc = (b + HALDANE, c + HALDANE) if min(b, c) == 0 else (b, c)
        odds = bb / cc
        half = 1.959963984540054 * math.sqrt(1 / bb + 1 / cc)
        ci = [math.exp(math.log(odds) - half), math.exp(math.log(odds) + half)]
    return {"b": b, "c": c, "n_discordant": b + c, "p_exact": min(p, 1.0), "odds_ratio": odds,
            "or_ci_95": ci, "q_value": None}


def metric_block(control: np.ndarray, treatment: np.ndarray, b: int, r: int, seed_seq: np.random.SeedSequence) -> dict[str, Any]:
    """Every paired statistic for one metric; NaN pairs (not applicable) are dropped first."""
    keep = np.isfinite(control) & np.isfinite(treatment)
    control, treatment = control[keep], treatment[keep]
    d = treatment - control
    boot_seq, perm_seq, hl_seq = seed_seq.spawn(3)
    return {
        "n_items": int(len(d)),
        "control_mean": float(control.mean()) if len(d) else None,
        "treatment_mean": float(treatment.mean()) if len(d) else None,
        "delta_mean": float(d.mean()) if len(d) else None,
        "sd_delta": float(d.std(ddof=1)) if len(d) > 1 else None,  # 0: no item changed (verdicts.py)
        "ci_95": bootstrap_ci(d, b, np.random.default_rng(boot_seq)),
        "wilcoxon": wilcoxon_test(d),
        "hodges_lehmann": hodges_lehmann(d, seed=int(hl_seq.generate_state(1)[0])),
        "cohens_d": cohens_d(d),
        "cliffs_delta": cliffs_delta(treatment, control),
        "perm_p_value": perm_p_value(d, r, np.random.default_rng(perm_seq)),
    }
