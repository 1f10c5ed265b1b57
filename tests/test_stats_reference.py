"""Statistics against reference implementations (statsmodels, scipy, brute force) on random data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from scoring import hodges_lehmann as hl
from scoring.fdr import bh_qvalues
from scoring.stats_meta import meta_analysis, selective_risk_curve, tost
from scoring.stats_paired import (
    bootstrap_means,
    cliffs_delta,
    cohens_d,
    mcnemar,
    perm_p_value,
    signflip_sums,
    wilcoxon_test,
)
from tests.support.paths import ROOT

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("seed", range(8))
def test_bh_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, size=10), [0.219, 0.219, 1.0]])
    rng.shuffle(p)
    np.testing.assert_allclose(bh_qvalues(p), multipletests(p, method="fdr_bh")[1], rtol=1e-12)
    assert np.all(bh_qvalues(p) >= p)  # never below the raw p (the reference project's bug)


def test_bh_small_cases() -> None:
    assert bh_qvalues([]).size == 0
    assert bh_qvalues([0.219]).tolist() == [0.219]


@pytest.mark.parametrize("seed", range(10))
def test_mcnemar_matches_statsmodels_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    ctl = rng.random(n) < rng.uniform(0.2, 0.8)
    trt = np.where(rng.random(n) < 0.7, ctl, rng.random(n) < 0.6)
    ours = mcnemar(ctl, trt)
    table = [[np.sum(ctl & trt), np.sum(ctl & ~trt)], [np.sum(~ctl & trt), np.sum(~ctl & ~trt)]]
    ref = sm_mcnemar(table, exact=True)
    assert ours["b"] == table[1][0] and ours["c"] == table[0][1]
    assert ours["p_exact"] == pytest.approx(ref.pvalue, rel=1e-10)


def test_mcnemar_edge_cases() -> None:
    same = np.array([True, False, True])
    none = mcnemar(same, same)
    assert (none["b"], none["c"], none["p_exact"], none["odds_ratio"], none["or_ci_95"]) == (0, 0, 1.0, None, None)
    one_sided = mcnemar(np.zeros(4, bool), np.ones(4, bool))  # b = 4, c = 0: Haldane
    assert one_sided["odds_ratio"] == pytest.approx(4.5 / 0.5)
    assert one_sided["or_ci_95"][0] < 9 < one_sided["or_ci_95"][1]
    assert one_sided["p_exact"] == pytest.approx(0.125)


@pytest.mark.parametrize("seed", range(6))
def test_wilcoxon_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = np.round(rng.normal(0.1, 1, size=int(rng.integers(8, 300))), 1)  # ties and zeros
    ref = sps.wilcoxon(d, zero_method="wilcox")
    ours = wilcoxon_test(d)
    assert ours["W"] == pytest.approx(ref.statistic) and ours["p_value"] == pytest.approx(ref.pvalue)


@pytest.mark.parametrize("seed", range(12))
def test_wilcoxon_small_n_with_ties_and_zeros_matches_scipy(seed: int) -> None:
    """n <= 13 with ties/zeros: scipy enumerates sign flips one by one; ours is vectorised, same numbers."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 14))
    d = rng.integers(-2, 3, n) / 2 if seed % 3 else np.round(rng.normal(size=n), 2)
    if not np.any(d != 0):
        return
    ref = sps.wilcoxon(d, zero_method="wilcox")
    ours = wilcoxon_test(d)
    assert ours["W"] == pytest.approx(float(ref.statistic)) and ours["p_value"] == pytest.approx(float(ref.pvalue))


def test_wilcoxon_all_zero_and_empty() -> None:
    assert wilcoxon_test(np.zeros(10)) == {"W": 0.0, "p_value": 1.0, "q_value": None}
    assert wilcoxon_test(np.array([]))["p_value"] is None


def brute_hl(d: np.ndarray) -> float:
    i, j = np.triu_indices(len(d))
    return float(np.median((d[i] + d[j]) / 2))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 11, 60, 301])
def test_hodges_lehmann_exact_both_paths(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(n)
    for d in (rng.integers(-5, 6, n) / 5, rng.normal(size=n)):
        expected = brute_hl(d)
        assert hl.hodges_lehmann(d) == pytest.approx(expected, abs=1e-12)
        monkeypatch.setattr(hl, "DISTINCT_LIMIT", 0)  # force the selection path
        monkeypatch.setattr(hl, "ENUMERATE_LIMIT", 7)
        assert hl.hodges_lehmann(d, seed=n) == pytest.approx(expected, abs=1e-12)
        monkeypatch.undo()
    assert hl.hodges_lehmann(np.array([])) is None


def test_cliffs_and_cohens() -> None:
    rng = np.random.default_rng(4)
    t, c = rng.integers(0, 4, 50) / 3, rng.integers(0, 4, 60) / 3
    brute = (np.sign(t[:, None] - c[None, :])).mean()
    assert cliffs_delta(t, c) == pytest.approx(brute)
    d = rng.normal(size=30)
    assert cohens_d(d) == pytest.approx(d.mean() / d.std(ddof=1))
    assert cohens_d(np.zeros(5)) is None and cohens_d(np.ones(1)) is None


def test_bootstrap_paths_agree_in_distribution() -> None:
    """Multinomial (few distinct values) and index resampling give the same bootstrap distribution."""
    rng = np.random.default_rng(0)
    d = rng.integers(-2, 3, 400) / 2
    few = bootstrap_means(d, 4000, np.random.default_rng(1))
    jitter = d + rng.normal(0, 1e-9, d.size)  # same data, every value distinct: index path
    many = bootstrap_means(jitter, 4000, np.random.default_rng(2))
    assert abs(few.mean() - many.mean()) < 0.01 and abs(few.std() / many.std() - 1) < 0.06
    assert abs(few.std() - d.std() / np.sqrt(d.size)) < 0.004


def test_signflip_paths_and_perm_p() -> None:
    rng = np.random.default_rng(5)
    d = rng.integers(-1, 2, 300).astype(float)
    few = signflip_sums(d, 5000, np.random.default_rng(1))
    many = signflip_sums(d + rng.normal(0, 1e-9, d.size), 5000, np.random.default_rng(2))
    expected_sd = np.sqrt((d**2).sum())
    assert abs(few.std() / expected_sd - 1) < 0.05 and abs(many.std() / expected_sd - 1) < 0.05
    assert perm_p_value(np.zeros(20), 999, np.random.default_rng(0)) == 1.0  # every flip ties
    p = perm_p_value(np.full(12, 0.5), 999, np.random.default_rng(0))
    assert p == pytest.approx((1 + 999 * 2 / 4096) / 1000, abs=0.004)  # exact p = 2/4096
    assert p >= 1 / 1000  # +1 correction: never 0


def test_bootstrap_ci_coverage_simulation() -> None:
    """A 95% percentile bootstrap interval covers the true mean about 95% of the time (n = 200)."""
    rng = np.random.default_rng(2024)
    sims, n, b = 400, 200, 400
    true_mean = 0.05
    hits = 0
    for _ in range(sims):
        d = (rng.binomial(3, 0.45, n) - rng.binomial(3, 0.45 - true_mean, n)) / 3  # E[d] = true_mean
        means = bootstrap_means(d, b, rng)
        low, high = np.percentile(means, [2.5, 97.5])
        hits += low <= true_mean <= high
    assert 0.92 <= hits / sims <= 0.975


def test_meta_dersimonian_laird_by_hand() -> None:
    effects = {"a": (0.10, 0.01**2, 100), "b": (0.02, 0.02**2, 100), "c": (-0.05, 0.015**2, 100)}
    y = np.array([0.10, 0.02, -0.05])
    v = np.array([0.01, 0.02, 0.015]) ** 2
    w = 1 / v
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    tau2 = max(0, (q - 2) / (w.sum() - (w**2).sum() / w.sum()))
    ws = 1 / (v + tau2)
    out = meta_analysis(effects)
    assert out["fixed"]["estimate"] == pytest.approx(fixed) and out["Q"] == pytest.approx(q)
    assert out["tau2"] == pytest.approx(tau2) and out["I2"] == pytest.approx((q - 2) / q)
    assert out["random"]["estimate"] == pytest.approx((ws * y).sum() / ws.sum())
    single = meta_analysis({"a": (0.1, 0.01, 10)})
    assert single["fixed"] is None and single["note"]


def test_tost() -> None:
    rng = np.random.default_rng(1)
    d = rng.normal(0.0, 0.1, 2000)
    out = tost(d, 0.02, 0.05)
    se = d.std(ddof=1) / np.sqrt(d.size)
    assert out["p_lower"] == pytest.approx(sps.t.sf((d.mean() + 0.02) / se, d.size - 1))
    assert out["non_inferior"] is True and out["equivalent"] is True
    worse = tost(d - 0.05, 0.02, 0.05)
    assert worse["non_inferior"] is False
    assert tost(np.array([0.1]), 0.02, 0.05)["p_lower"] is None


def test_selective_risk() -> None:
    abstain = np.array([0.0, 0.0, 0.5, 1.0])
    em = np.array([1.0, 0.0, 1.0, 0.0])
    out = selective_risk_curve(abstain, em, [0.0, 0.5, 1.0])
    pts = {p["threshold"]: p for p in out["thresholds"]}
    assert pts[0.0]["coverage"] == 0.75 and pts[0.0]["selective_accuracy"] == pytest.approx(2 / 3)
    assert pts[1.0]["coverage"] == 0.5 and pts[1.0]["risk"] == pytest.approx(0.5)
    # ranking: {1.0: items 0,1} tie -> risk 1/2 for k=1,2; then item 2 -> 1/3; then item 3 -> 2/4
    assert out["aurc"] == pytest.approx((0.5 + 0.5 + 1 / 3 + 0.5) / 4)


def test_scipy_floor_is_the_first_version_the_wilcoxon_reference_agrees_with() -> None:
    """scipy 1.15.0 changed wilcoxon's method="auto" (a permutation test for small n with ties or zeros,
    which ``wilcoxon_test`` reproduces); with 1.11-1.14 the small-n reference tests above fail (checked
    with 1.14.1: 5 of 12), so setup.cfg must not allow them."""
    import configparser

    import scipy
    from packaging.requirements import Requirement
    from packaging.version import Version

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    reqs = [Requirement(line) for line in cfg["options"]["install_requires"].splitlines() if line.strip()]
    spec = next(r.specifier for r in reqs if r.name == "scipy")
    assert "1.15.0" in spec and "1.14.1" not in spec and "1.11.4" not in spec, str(spec)
    assert Version(scipy.__version__) in spec
