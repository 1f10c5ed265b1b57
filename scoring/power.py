"""The items you need (issue 27, item 3): exact power of the exact McNemar test the statistics run, the
minimum detectable effect for a size, and the size for an effect (docs/statistics.md, section 4).

Why exact: Connor's normal-approximation formula (312 items for a 5-point change at discordance 0.10)
gave 76% power in simulation, not 80%, because the exact test is conservative. Here the power is summed
exactly: the discordant pairs D ~ Binomial(n, psi); given D, the test rejects when b falls in the exact
two-sided binomial(D, 1/2) rejection region; b ~ Binomial(D, p10 / psi). A planned figure therefore
holds in simulation (tools/power_sim.py).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats as sps

Z = sps.norm.ppf


def _rejection_k(d: np.ndarray, alpha: float) -> np.ndarray:
    """Per number of discordant pairs D: the largest k with 2 * P(B <= k) <= alpha, B ~ Binomial(D, 1/2)
    (-1 when no k rejects)."""
    k = sps.binom.ppf(alpha / 2, d, 0.5)
    k = np.where(sps.binom.cdf(k, d, 0.5) > alpha / 2, k - 1, k)
    return np.where(d > 0, k, -1)


def mcnemar_power(n: int, p10: float, p01: float, alpha: float = 0.05) -> float:
    """Power of the exact two-sided McNemar test with ``n`` paired items, discordant probabilities p10
    (control wrong, treatment right) and p01 (the reverse)."""
    psi = p10 + p01
    if n <= 0 or psi <= 0:
        return 0.0
    d = np.arange(n + 1)
    weight = sps.binom.pmf(d, n, psi)
    k = _rejection_k(d, alpha)
    q = p10 / psi
    low = np.where(k >= 0, sps.binom.cdf(k, d, q), 0.0)
    high = np.where(k >= 0, sps.binom.sf(d - k - 1, d, q), 0.0)
    return float(np.sum(weight * np.minimum(low + high, 1.0)))


def connor_n(delta: float, psi: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Connor (1987): n = [z(1-a/2) sqrt(psi) + z(power) sqrt(psi - delta^2)]^2 / delta^2."""
    return math.ceil((Z(1 - alpha / 2) * math.sqrt(psi) + Z(power) * math.sqrt(psi - delta ** 2)) ** 2 / delta ** 2)


def items_needed(delta: float, psi: float, alpha: float = 0.05, power: float = 0.8, limit: int = 2_000_000) -> int:
    """The fewest paired items whose exact power reaches ``power`` for a change of ``delta`` (a share, e.g.
    0.05) at discordance ``psi``; from Connor's n upwards."""
    if not 0 < delta <= psi <= 1:
        raise ValueError("need 0 < effect <= discordance <= 1")
    p10, p01 = (psi + delta) / 2, (psi - delta) / 2
    n = max(2, connor_n(delta, psi, alpha, power) - 5)
    step = max(1, n // 200)
    while mcnemar_power(n, p10, p01, alpha) < power:  # coarse, then back to the first n that reaches it
        n += step
        if n > limit:
            raise ValueError("more items than any dataset holds")
    while n > 2 and mcnemar_power(n - 1, p10, p01, alpha) >= power:
        n -= 1
    return n


def min_detectable_effect(n: int, psi: float, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest change (a share) that ``n`` paired items detect with ``power`` at discordance ``psi``;
    None when not even a change of ``psi`` (every discordant pair one way) would."""
    if n < 2 or psi <= 0:
        return None
    if mcnemar_power(n, psi, 0.0, alpha) < power:
        return None
    lo, hi = 0.0, psi
    for _ in range(40):
        mid = (lo + hi) / 2
        if mcnemar_power(n, (psi + mid) / 2, (psi - mid) / 2, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def simulated_power(n: int, p10: float, p01: float, alpha: float = 0.05, trials: int = 4000, seed: int = 7) -> float:
    """Power by simulation (the check on ``mcnemar_power``): multinomial pairs, the exact test each time."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, [p10, p01, 1 - p10 - p01], size=trials)
    b, c = counts[:, 0], counts[:, 1]
    d = b + c
    k = _rejection_k(d, alpha)
    reject = (k >= 0) & ((b <= k) | (b >= d - k))
    return float(reject.mean())
