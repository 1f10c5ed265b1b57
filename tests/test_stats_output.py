"""significance.json as a whole: keys of CONTRACT section 7, FDR across the file, edge cases, strict JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from statsmodels.stats.multitest import multipletests

from config.schema import StatsConfig
from producer.cli.cmd_stats import stats as stats_main
from scoring.aggregate import write_per_item_csv
from scoring.fdr import iter_tests
from scoring.stats import build_significance
from tests.support.stats_frames import frame, strict_loads, synthetic

pytestmark = pytest.mark.unit

CFG = StatsConfig(bootstrap_samples=300, permutation_samples=300, seed=7)


def test_keys_fdr_and_reproducible(tmp_path: Path) -> None:
    sig = build_significance(synthetic(), CFG)
    assert sig["schema_version"] == 2 and sig["temps"] == ["0.0", "0.7"]
    assert sig["stats_config"]["bootstrap_samples"] == 300
    block = sig["results"]["0.7"]["open"]
    assert block["n_items"] == 20
    assert set(block) >= {"n_items", "mcnemar", "metrics", "selective_risk", "subgroups", "meta", "tost"}
    assert set(block["mcnemar"]) >= {"b", "c", "p_exact", "odds_ratio", "or_ci_95", "q_value"}
    assert set(block["metrics"]) == {"em", "f1", "abstain_rate", "false_answer_rate", "unsupported_rate"}
    for m in block["metrics"].values():
        assert set(m) >= {"n_items", "delta_mean", "ci_95", "wilcoxon", "hodges_lehmann", "cohens_d",
                          "cliffs_delta", "perm_p_value"}
        assert set(m["wilcoxon"]) == {"W", "p_value", "q_value"}
        assert m["ci_95"][0] <= m["delta_mean"] <= m["ci_95"][1]
    assert set(block["tost"]) == {"em", "f1"} and set(sig["results"]["0.7"]["closed"]["tost"]) == {"em"}
    assert set(block["selective_risk"]) == {"control", "treatment"}
    assert {p["threshold"] for p in block["selective_risk"]["control"]["thresholds"]} == set(CFG.risk_thresholds)
    closed = sig["results"]["0.7"]["closed"]
    assert set(closed["subgroups"]["dataset"]) == {"triviaqa", "nq_open"}
    assert closed["meta"]["em"]["k"] == 2 and closed["meta"]["em"]["random"] is not None
    assert set(block["subgroups"]["dataset"]) == {"squad_v2"}  # the single open dataset, still reported
    # q-values: one BH family over every test in the file (single-dataset duplicates not counted twice)
    tests = [t for per in sig["results"].values() for b in per.values() for t in iter_tests(b)]
    family = []
    for per in sig["results"].values():
        for b in per.values():
            subs = b["subgroups"]["dataset"]
            own = [b["mcnemar"], *(m["wilcoxon"] for m in b["metrics"].values())]
            family += own
            if len(subs) > 1:
                for s in subs.values():
                    family += [s["mcnemar"], *(m["wilcoxon"] for m in s["metrics"].values())]
    assert sig["stats_config"]["fdr"]["n_tests"] == len(family) < len(tests)
    p = [t.get("p_exact", t.get("p_value")) for t in family]
    np.testing.assert_allclose([t["q_value"] for t in family], multipletests(p, method="fdr_bh")[1])
    again = build_significance(synthetic(), CFG)
    assert json.dumps(again, sort_keys=True) == json.dumps(sig, sort_keys=True)


def test_edge_cases_are_strict_json(tmp_path: Path) -> None:
    rows = []
    # one item, identical in both conditions: no discordant pairs, all deltas zero
    for cond in ("control", "treatment"):
        rows.append({"item_key": "triviaqa|only", "type": "closed", "condition": cond, "temp": "0.0",
                     "em": 1.0, "em_std": 0.0, "abstain_rate": 0.0, "abstain_rate_std": 0.0})
    rows.append({"item_key": "nq_open|unpaired", "type": "closed", "condition": "control", "temp": "0.0",
                 "em": 0.0, "em_std": 0.0, "abstain_rate": 0.0, "abstain_rate_std": 0.0})
    path = write_per_item_csv(frame(rows), tmp_path / "per_item_scores.csv")
    res = CliRunner().invoke(stats_main, ["--per_item_csv", str(path), "--out_path", str(tmp_path / "sig.json")])
    assert res.exit_code == 0, res.output
    sig = strict_loads((tmp_path / "sig.json").read_text(encoding="utf-8"))
    block = sig["results"]["0.0"]["closed"]
    assert block["n_items"] == 1  # the unpaired item is not counted
    assert block["mcnemar"]["b"] == block["mcnemar"]["c"] == 0 and block["mcnemar"]["p_exact"] == 1.0
    em = block["metrics"]["em"]
    assert em["delta_mean"] == 0.0 and em["ci_95"] == [0.0, 0.0] and em["hodges_lehmann"] == 0.0
    assert em["wilcoxon"]["p_value"] == 1.0 and em["cohens_d"] is None and em["perm_p_value"] == 1.0
    assert block["tost"]["em"]["p_lower"] is None and block["meta"]["em"]["fixed"] is None
    assert "open" not in sig["results"]["0.0"]


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(stats_main, ["--per_item_csv", str(tmp_path / "missing.csv"),
                                          "--out_path", str(tmp_path / "o.json")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "not found" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    res = CliRunner().invoke(stats_main, ["--per_item_csv", str(bad), "--out_path", str(tmp_path / "o.json")])
    assert res.exit_code == 2 and "missing columns" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("enable", [False])
def test_fdr_off_leaves_q_null(enable: bool) -> None:
    sig = build_significance(synthetic(n=90, temps=("0.0",)), StatsConfig(
        bootstrap_samples=100, permutation_samples=100, enable_fdr=enable))
    block = sig["results"]["0.0"]["closed"]
    assert block["mcnemar"]["q_value"] is None and block["metrics"]["em"]["wilcoxon"]["q_value"] is None
