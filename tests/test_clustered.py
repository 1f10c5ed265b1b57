"""Clustered inference (issue 27, item 1): the cluster bootstrap against an exhaustive enumeration, the
cluster-adjusted McNemar (Durkalski et al. 2003) and the design effect against hand-computed values,
clusters of one item reducing to the item-level figures, and significance.json's new keys."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import scoring.clustered as clustered
from config.contract import item_key
from config.schema import StatsConfig
from scoring.clustered import (
    cluster_bootstrap_ci,
    cluster_bootstrap_means,
    cluster_of_items,
    cluster_perm_ps,
    cluster_sums,
    clustered_mcnemar,
    design_effect,
)
from scoring.stats import build_significance, run_stats
from tests.support.stats_frames import frame, strict_loads, synthetic

pytestmark = pytest.mark.unit

# three paragraphs of 2, 1 and 3 items: deltas d, per paragraph sums S = (1, -1, 3), sizes n = (2, 1, 3)
D = np.array([1.0, 0.0, -1.0, 1.0, 1.0, 1.0])
CODES = np.array([0, 0, 1, 2, 2, 2])


def _exact_distribution() -> dict[float, float]:
    """Every one of the 3^3 equally likely paragraph resamples: its mean sum(S) / sum(n)."""
    s, n = cluster_sums(D, CODES, 3)
    out: Counter[float] = Counter()
    for pick in itertools.product(range(3), repeat=3):
        out[round(float(s[list(pick)].sum() / n[list(pick)].sum()), 12)] += 1 / 27
    return dict(out)


@pytest.mark.parametrize("few_distinct", [64, 0])  # the multinomial path and the index-matrix path
def test_the_cluster_bootstrap_draws_paragraphs_as_the_exhaustive_enumeration_says(few_distinct, monkeypatch):
    monkeypatch.setattr(clustered, "FEW_DISTINCT", few_distinct)
    if few_distinct == 0:
        monkeypatch.setattr(clustered, "CHUNK_CELLS", 3 * 1000)  # several chunks
    s, n = cluster_sums(D, CODES, 3)
    means = cluster_bootstrap_means(s, n, 200_000, np.random.default_rng(5))
    exact = _exact_distribution()
    seen = Counter(np.round(means, 12).tolist())
    assert set(seen) == set(exact)
    for value, prob in exact.items():
        assert seen[value] / len(means) == pytest.approx(prob, abs=0.004)
    exact_mean = sum(v * p for v, p in exact.items())
    exact_var = sum((v - exact_mean) ** 2 * p for v, p in exact.items())
    assert means.var() == pytest.approx(exact_var, rel=0.02)


def test_the_cluster_interval_is_the_enumerated_percentiles_and_reproducible():
    exact = sorted(_exact_distribution().items())
    cdf = np.cumsum([p for _, p in exact])
    low_exact = exact[int(np.searchsorted(cdf, 0.025))][0]
    high_exact = exact[int(np.searchsorted(cdf, 0.975))][0]
    ci = cluster_bootstrap_ci(D, CODES, 20_000, np.random.default_rng(1))
    # 2.5% and 97.5% fall strictly inside atoms of the enumerated distribution: the percentile is that atom
    assert ci == pytest.approx([low_exact, high_exact], abs=1e-9)
    assert ci == cluster_bootstrap_ci(D, CODES, 20_000, np.random.default_rng(1))


def test_the_cluster_permutation_p_is_the_enumeration_of_every_paragraph_flip(monkeypatch):
    monkeypatch.setattr(clustered, "CHUNK_CELLS", 6 * 997)  # several chunks
    d2 = np.array([1.0, 1.0, np.nan, 0.0, 1.0, 1.0])  # a second metric, one item not applicable
    ps = cluster_perm_ps({"a": D, "b": d2, "none": np.full(6, np.nan)}, CODES, 100_000, np.random.default_rng(3))
    for name, d in (("a", D), ("b", d2)):
        s, _ = cluster_sums(d, CODES, 3)
        flips = np.array(list(itertools.product((-1, 1), repeat=3)))
        exact = np.mean(np.abs(flips @ s) >= abs(s.sum()) - 1e-9)  # the share of the 8 flips as extreme
        assert ps[name] == pytest.approx(exact, abs=0.005)
    assert ps["none"] is None


def test_the_design_effect_and_clustered_se_by_hand():
    # d = (1, 1, 0, 0) on paragraphs (0, 0, 1, 1): mean 1/2, S = (2, 0), n = (2, 2)
    # v_cl = G/(G-1) * sum (S - n mean)^2 / N^2 = 2 * (1 + 1) / 16 = 1/4; v_iid = var(d, 1) / N = (1/3) / 4
    se, deff = design_effect(np.array([1.0, 1.0, 0.0, 0.0]), np.array([0, 0, 1, 1]))
    assert se == pytest.approx(0.5)
    assert deff == pytest.approx(3.0)
    # answers that do not move together: the same d spread across the paragraphs
    se, deff = design_effect(np.array([1.0, 0.0, 1.0, 0.0]), np.array([0, 0, 1, 1]))
    assert se == pytest.approx(0.0) and deff == pytest.approx(0.0)
    # one item per cluster: exactly the item-level variance
    d = np.random.default_rng(2).normal(size=50)
    se, deff = design_effect(d, np.arange(50))
    assert deff == pytest.approx(1.0, abs=1e-12) and se == pytest.approx(d.std(ddof=1) / math.sqrt(50))


def test_durkalski_mcnemar_against_a_hand_computed_value():
    # paragraph: (b_g, c_g) = (2, 0), (1, 1), (0, 1), (3, 0); D_g = b_g - c_g = 2, 0, -1, 3
    ctl = np.array([0, 0, 1, 0, 1, 1, 0, 0, 0, 1], dtype=bool)
    trt = np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 1], dtype=bool)
    codes = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    out = clustered_mcnemar(ctl, trt, codes)
    chi2 = (2 + 0 - 1 + 3) ** 2 / (4 + 0 + 1 + 9)  # 16 / 14
    assert out["chi2"] == pytest.approx(chi2)
    assert out["p_value"] == pytest.approx(math.erfc(math.sqrt(chi2 / 2)))  # chi-square, 1 df: 2 * (1 - Phi(1.06904))
    assert out["p_value"] == pytest.approx(0.28505, abs=1e-5)
    assert out["design_effect"] == pytest.approx(14 / 8)  # b + c = 6 + 2


def test_one_item_per_cluster_is_mcnemars_chi_square():
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    rng = np.random.default_rng(3)
    ctl, trt = rng.random(80) < 0.5, rng.random(80) < 0.6
    out = clustered_mcnemar(ctl, trt, np.arange(80))
    table = [[np.sum(ctl & trt), np.sum(ctl & ~trt)], [np.sum(~ctl & trt), np.sum(~ctl & ~trt)]]
    ref = sm_mcnemar(table, exact=False, correction=False)
    assert out["chi2"] == pytest.approx(ref.statistic) and out["p_value"] == pytest.approx(ref.pvalue)
    assert out["design_effect"] == pytest.approx(1.0)


def _without_clustered(obj):
    if isinstance(obj, dict):
        return {k: _without_clustered(v) for k, v in obj.items() if k != "clustered"}
    return obj


def test_clusters_of_one_reduce_to_the_item_level_figures():
    per_item = synthetic(90)
    cfg = StatsConfig(bootstrap_samples=400, permutation_samples=400)
    sig = build_significance(per_item, cfg)  # no clusters: every item its own
    for per_type in sig["results"].values():
        for block in per_type.values():
            cl = block["clustered"]
            assert cl["unit"] == "item" and cl["n_clusters"] == block["n_items"] and cl["mean_cluster_size"] == 1
            for name, metric in block["metrics"].items():
                assert cl["metrics"][name]["ci_95"] == metric["ci_95"]
                assert cl["metrics"][name]["perm_p_value"] == metric["perm_p_value"]
                assert cl["metrics"][name]["design_effect"] == pytest.approx(1.0)
    # the item-level figures are not touched by clustering
    keys = per_item["item_key"].unique()
    paragraphs = {k: f"p{i // 5}" for i, k in enumerate(sorted(keys)) if k.startswith("squad_v2")}
    with_clusters = build_significance(per_item, cfg, paragraphs)
    for temp, per_type in sig["results"].items():
        for type_, block in per_type.items():
            other = with_clusters["results"][temp][type_]
            assert _without_clustered(other) == _without_clustered(block)
    assert with_clusters["results"]["0.0"]["open"]["clustered"]["unit"] == "paragraph"
    assert with_clusters["results"]["0.0"]["closed"]["clustered"]["unit"] == "item"


def _prepared(root: Path, n_paragraphs: int, per_paragraph: int) -> Path:
    prepared = root / "prepared"
    prepared.mkdir()
    with open(prepared / "open_book.jsonl", "w", encoding="utf-8") as f:
        for i in range(n_paragraphs * per_paragraph):
            f.write(json.dumps({"dataset": "squad_v2", "id": f"q{i}", "context": f"Paragraph {i // per_paragraph}.",
                                "question": f"Q{i}?", "answers": ["x"], "is_unanswerable": False}) + "\n")
    with open(prepared / "closed_book.jsonl", "w", encoding="utf-8") as f:
        for i in range(20):
            f.write(json.dumps({"dataset": "triviaqa", "id": f"t{i}", "question": f"T{i}?", "answers": ["y"]}) + "\n")
    return prepared


def test_significance_json_gains_the_clustered_keys_from_the_prepared_contexts(tmp_path):
    prepared = _prepared(tmp_path, 8, 5)
    rng = np.random.default_rng(4)
    rows = []
    for i in range(40):
        shared = rng.random() < 0.5  # one draw per item; the paragraph effect below
        para = (i // 5) % 2
        for cond in ("control", "treatment"):
            em = float(para if cond == "treatment" else shared)
            rows.append({"item_key": item_key("squad_v2", f"q{i}"), "type": "open", "condition": cond, "temp": "0.0",
                         "em": em, "abstain_rate": 0.0, "f1": em, "false_answer_rate": 0.0, "unsupported_rate": 0.0})
    for i in range(20):
        for cond in ("control", "treatment"):
            rows.append({"item_key": item_key("triviaqa", f"t{i}"), "type": "closed", "condition": cond,
                         "temp": "0.0", "em": float(rng.integers(0, 2)), "abstain_rate": 0.0})
    csv = tmp_path / "per_item_scores.csv"
    frame(rows).to_csv(csv, index=False, encoding="utf-8")
    out = run_stats(csv, StatsConfig(bootstrap_samples=500, permutation_samples=500), tmp_path / "sig.json",
                    prepared_dir=prepared)
    sig = strict_loads(out.read_text(encoding="utf-8"))
    block = sig["results"]["0.0"]["open"]
    cl = block["clustered"]
    assert cl["unit"] == "paragraph" and cl["cluster_source"] == "context_sha256"
    assert cl["n_clusters"] == 8 and cl["mean_cluster_size"] == 5.0 and cl["max_cluster_size"] == 5
    assert set(cl["mcnemar"]) == {"method", "chi2", "p_value", "design_effect", "q_value"}
    em = cl["metrics"]["em"]
    assert set(em) == {"ci_95", "perm_p_value", "se", "design_effect", "q_value"}
    assert em["design_effect"] > 1.5  # treatment's answers move together on each paragraph
    item_ci, cl_ci = block["metrics"]["em"]["ci_95"], em["ci_95"]
    assert cl_ci[1] - cl_ci[0] > item_ci[1] - item_ci[0]  # wider: the paragraphs are the units
    assert sig["results"]["0.0"]["closed"]["clustered"]["unit"] == "item"
    assert sig["stats_config"]["clustered"]["fdr"]["n_tests"] > 0
    assert em["q_value"] is not None
    assert cluster_of_items([{"dataset": "triviaqa", "id": "t1", "question": "?"}]) == {"triviaqa|t1": "triviaqa|t1"}


def test_the_headline_takes_the_clustered_interval_and_p_where_paragraphs_exist():
    from scoring.report_clustered import clustered_sentence
    from scoring.report_sig import effect_rows
    from scoring.report_text import fmt_p, fmt_pts, headline

    per_item = synthetic(150, temps=("0.0",))
    cfg = StatsConfig(bootstrap_samples=400, permutation_samples=400)
    keys = sorted(per_item["item_key"].unique())
    paragraphs = {k: f"p{i // 2}" for i, k in enumerate(keys) if k.startswith("squad_v2")}
    sig = build_significance(per_item, cfg, paragraphs)
    open_line, closed_line = headline(effect_rows(sig), sig, None)
    cl = sig["results"]["0.0"]["open"]["clustered"]["metrics"]["false_answer_rate"]
    assert "clustered by paragraph" in open_line
    assert f"95% CI {fmt_pts(cl['ci_95'][0])} to {fmt_pts(cl['ci_95'][1])} points, q = {fmt_p(cl['q_value'])}" in open_line
    assert "clustered" not in closed_line  # closed-book items are their own clusters: item-level figures
    n_paragraphs = len(set(paragraphs.values()))
    assert n_paragraphs >= 20
    assert clustered_sentence(sig["results"]["0.0"]["open"]).startswith(f"Clustered by paragraph: {n_paragraphs} paragraphs")
    assert clustered_sentence(sig["results"]["0.0"]["closed"]) is None
    plain = build_significance(per_item, cfg)  # no paragraphs known: today's headline
    assert not any("clustered" in line for line in headline(effect_rows(plain), plain, None))


def test_analyse_clusters_the_open_book_items_that_share_a_passage(tmp_path):
    """The trial's analysis hands the prepared contexts to the stats stage: two questions on one passage
    are one paragraph."""
    from config.atomic import write_jsonl_atomic
    from config.schema import EvalConfig
    from scoring.pipeline import analyse_trial
    from tests.support.scoring_inputs import OPEN, make_inputs

    prepared, results = make_inputs(tmp_path)
    write_jsonl_atomic(prepared / "open_book.jsonl", [{**it, "context": OPEN[0]["context"]} for it in OPEN])
    cfg = EvalConfig.model_validate({"local_engine": "dry_run",
                                     "stats": {"bootstrap_samples": 100, "permutation_samples": 100}})
    analyse_trial(results, prepared, cfg)
    sig = strict_loads((results / "significance.json").read_text(encoding="utf-8"))
    cl = sig["results"]["0.7"]["open"]["clustered"]
    assert (cl["unit"], cl["n_clusters"], cl["max_cluster_size"]) == ("paragraph", 1, 2)
    assert sig["results"]["0.0"]["closed"]["clustered"]["unit"] == "item"


def test_too_few_paragraphs_keep_the_item_level_headline_and_say_why():
    """With the demo's 6 paragraphs a percentile cluster bootstrap covers 74-84 % (tools/coverage_sim.py
    --paragraphs 6): the headline keeps the item-level interval and p, and says the items share too few
    paragraphs to correct for, instead of a narrow interval beside a large q."""
    from scoring.report_clustered import MIN_HEADLINE_PARAGRAPHS
    from scoring.report_sig import effect_rows
    from scoring.report_text import fmt_p, headline

    per_item = synthetic(90, temps=("0.0",))
    cfg = StatsConfig(bootstrap_samples=400, permutation_samples=400)
    keys = sorted(k for k in per_item["item_key"].unique() if k.startswith("squad_v2"))
    few = {k: f"p{i % 6}" for i, k in enumerate(keys)}
    assert len(set(few.values())) < MIN_HEADLINE_PARAGRAPHS
    sig = build_significance(per_item, cfg, few)
    open_line = headline(effect_rows(sig), sig, None)[0]
    item = sig["results"]["0.0"]["open"]["metrics"]["false_answer_rate"]
    assert f"q = {fmt_p(item['wilcoxon']['q_value'])}" in open_line and "clustered by paragraph" not in open_line
    assert (f"the {len(keys)} items share only 6 paragraphs, too few to correct the interval for clustering "
            "(read it as too narrow)") in open_line
