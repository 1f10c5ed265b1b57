"""The items you need (issue 27, item 3): exact power of the exact McNemar test, checked against a brute
enumeration and against simulation; Connor's formula, the old figure, undershoots (76% for 80%)."""

from __future__ import annotations

import itertools
import math

import pytest
import scipy.stats as sps

from scoring.power import connor_n, items_needed, mcnemar_power, min_detectable_effect, simulated_power

pytestmark = pytest.mark.unit


def _brute(n: int, p10: float, p01: float, alpha: float) -> float:
    """Every outcome of n pairs (b, c, rest) with its multinomial probability, tested with scipy."""
    total = 0.0
    for b, c in itertools.product(range(n + 1), repeat=2):
        if b + c > n:
            continue
        prob = math.comb(n, b) * math.comb(n - b, c) * p10 ** b * p01 ** c * (1 - p10 - p01) ** (n - b - c)
        p = 1.0 if b + c == 0 else sps.binomtest(b, b + c, 0.5).pvalue
        total += prob * (p <= alpha)
    return total


@pytest.mark.parametrize(("n", "p10", "p01"), [(8, 0.3, 0.05), (12, 0.2, 0.1), (15, 0.4, 0.0)])
def test_exact_power_equals_the_enumeration_of_every_outcome(n, p10, p01):
    assert mcnemar_power(n, p10, p01, 0.05) == pytest.approx(_brute(n, p10, p01, 0.05), abs=1e-12)


def test_the_planned_size_holds_in_simulation_where_connors_did_not():
    psi, delta = 0.10, 0.05
    p10, p01 = (psi + delta) / 2, (psi - delta) / 2
    assert connor_n(delta, psi) == 312  # docs/statistics.md section 4's worked example
    assert simulated_power(312, p10, p01, trials=8000) < 0.78  # the old figure: about 76%
    n = items_needed(delta, psi)
    assert mcnemar_power(n, p10, p01) >= 0.8 > mcnemar_power(n - 1, p10, p01)
    assert abs(simulated_power(n, p10, p01, trials=8000) - 0.8) <= 0.02  # the tool's figure holds


def test_the_minimum_detectable_effect_is_the_inverse():
    mde = min_detectable_effect(400, 0.10)
    assert mde is not None and 0.04 < mde < 0.06
    assert mcnemar_power(400, (0.10 + mde) / 2, (0.10 - mde) / 2) >= 0.8
    assert min_detectable_effect(12, 0.10) is None  # too few items: one discordant item on average
