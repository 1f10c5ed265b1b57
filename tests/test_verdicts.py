"""One verdict per metric and block (issue 27, item 4): better, worse, equivalent or inconclusive, decided
after FDR, with the rule in docs/statistics.md.

Why: a reader needs the decision, not five numbers; and a block where no item changed (0% against 0% EM
on 12 items) printed "non-inferior yes, equivalent yes" from a TOST with zero variance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from config.schema import StatsConfig
from scoring.stats import build_significance
from scoring.stats_meta import tost
from scoring.verdicts import VERDICTS, metric_verdict

pytestmark = pytest.mark.unit


def _per_item(em_control: list[float], em_treatment: list[float], type_: str = "closed") -> pd.DataFrame:
    rows = []
    dataset = "squad_v2" if type_ == "open" else "triviaqa"
    for i, (c, t) in enumerate(zip(em_control, em_treatment, strict=True)):
        for cond, em in (("control", c), ("treatment", t)):
            rows.append({"item_key": f"{dataset}|q{i}", "type": type_, "condition": cond, "temp": "0.0", "em": em,
                         "f1": em, "abstain_rate": 0.0, "false_answer_rate": 1.0 - em, "unsupported_rate": np.nan})
    return pd.DataFrame(rows)


def _closed(sig: dict) -> dict:
    return sig["results"]["0.0"]["closed"]


def test_no_item_changed_is_inconclusive_never_equivalent():
    sig = build_significance(_per_item([0.0] * 12, [0.0] * 12), StatsConfig(bootstrap_samples=200,
                                                                              permutation_samples=200))
    block = _closed(sig)
    assert block["tost"]["em"]["equivalent"] is None and block["tost"]["em"]["non_inferior"] is None
    verdict = block["metrics"]["em"]["verdict"]
    assert verdict["verdict"] == "inconclusive" and "no item changed" in verdict["reason"]


def test_a_clear_improvement_is_better_and_its_mirror_is_worse():
    cfg = StatsConfig(bootstrap_samples=500, permutation_samples=500)
    up = _closed(build_significance(_per_item([0.0] * 40, [1.0] * 30 + [0.0] * 10), cfg))
    assert up["metrics"]["em"]["verdict"]["verdict"] == "better"
    opened = build_significance(_per_item([0.0] * 40, [1.0] * 30 + [0.0] * 10, "open"), cfg)["results"]["0.0"]["open"]
    assert opened["metrics"]["false_answer_rate"]["verdict"]["verdict"] == "better"  # lower is better there
    down = _closed(build_significance(_per_item([1.0] * 30 + [0.0] * 10, [0.0] * 40), cfg))
    assert down["metrics"]["em"]["verdict"]["verdict"] == "worse"


def test_equivalence_needs_tost_within_the_margin_and_no_significant_change():
    block = {"n_items": 400, "delta_mean": 0.0, "sd_delta": 0.2, "wilcoxon": {"p_value": 0.9, "q_value": 0.95}}
    within = tost(np.r_[np.full(200, 0.01), np.full(200, -0.01)], 0.02, 0.05)
    assert metric_verdict("em", block, within, 0.05)["verdict"] == "equivalent"
    assert metric_verdict("em", block, None, 0.05)["verdict"] == "inconclusive"  # no margin: cannot say
    assert metric_verdict("abstain_rate", {**block, "delta_mean": 0.3, "wilcoxon": {"q_value": 0.001}}, None,
                          0.05)["verdict"] == "higher"  # no preferred direction
    assert set(VERDICTS) == {"better", "worse", "higher", "lower", "equivalent", "inconclusive"}
