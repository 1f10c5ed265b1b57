"""significance.json names, per block, the items dropped from the paired statistics because one
condition has no score (issue 12.5); a (temp, type) without one paired item is recorded too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.contract import item_key
from config.schema import StatsConfig
from producer.cli.cmd_stats import stats as stats_main
from scoring.aggregate import write_per_item_csv
from scoring.stats import build_significance
from tests.support.stats_frames import frame, strict_loads, synthetic

pytestmark = pytest.mark.unit

CFG = StatsConfig(bootstrap_samples=200, permutation_samples=200, seed=3)


def _drop(per_item, temp: str, condition: str, *keys: str):
    gone = (per_item["temp"] == temp) & (per_item["condition"] == condition) & per_item["item_key"].isin(keys)
    assert gone.sum() == len(keys)
    return per_item[~gone].reset_index(drop=True)


def test_blocks_name_the_items_dropped_for_a_missing_condition() -> None:
    per_item = synthetic(n=60)  # items q0..q59: squad_v2, triviaqa, nq_open in turn
    per_item = _drop(per_item, "0.0", "treatment", item_key("squad_v2", "q0"), item_key("triviaqa", "q1"))
    per_item = _drop(per_item, "0.0", "control", item_key("nq_open", "q2"), item_key("nq_open", "q5"))
    sig = build_significance(per_item, CFG)
    open_, closed = sig["results"]["0.0"]["open"], sig["results"]["0.0"]["closed"]
    assert open_["unpaired"] == {"control_only": ["squad_v2|q0"], "treatment_only": []}
    assert closed["unpaired"] == {"control_only": ["triviaqa|q1"], "treatment_only": ["nq_open|q2", "nq_open|q5"]}
    assert open_["n_items"] == 19 and closed["n_items"] == 37
    subs = closed["subgroups"]["dataset"]
    assert subs["triviaqa"]["unpaired"] == {"control_only": ["triviaqa|q1"], "treatment_only": []}
    assert subs["nq_open"]["unpaired"] == {"control_only": [], "treatment_only": ["nq_open|q2", "nq_open|q5"]}
    assert open_["subgroups"]["dataset"]["squad_v2"]["unpaired"] == open_["unpaired"]  # the lone dataset
    for block in sig["results"]["0.7"].values():
        assert block["unpaired"] == {"control_only": [], "treatment_only": []}
    assert sig["no_paired_items"] == {}


def test_a_type_without_paired_items_is_recorded(tmp_path: Path) -> None:
    """Every control request on open-book failed at 0.0: no BLOCK, but the file says which items."""
    per_item = synthetic(n=30)
    no_control = (per_item["temp"] == "0.0") & (per_item["type"] == "open") & (per_item["condition"] == "control")
    per_item = per_item[~no_control].reset_index(drop=True)
    csv_path = write_per_item_csv(per_item, tmp_path / "per_item_scores.csv")
    out = tmp_path / "significance.json"
    res = CliRunner().invoke(stats_main, ["--per_item_csv", str(csv_path), "--out_path", str(out)])
    assert res.exit_code == 0, res.output
    sig = strict_loads(out.read_text(encoding="utf-8"))
    assert "open" not in sig["results"]["0.0"] and "closed" in sig["results"]["0.0"]
    expected = sorted(item_key("squad_v2", f"q{i}") for i in range(0, 30, 3))
    assert sig["no_paired_items"] == {"0.0": {"open": {"unpaired": {"control_only": [],
                                                                     "treatment_only": expected}}}}
    assert json.loads(json.dumps(sig)) == sig


def test_single_rows_only_in_one_condition_are_not_counted_as_paired() -> None:
    rows = [{"item_key": item_key("triviaqa", "a"), "type": "closed", "condition": "control", "temp": "0.0",
             "em": 1.0, "abstain_rate": 0.0},
            {"item_key": item_key("triviaqa", "a"), "type": "closed", "condition": "treatment", "temp": "0.0",
             "em": 0.0, "abstain_rate": 0.0},
            {"item_key": item_key("triviaqa", "b"), "type": "closed", "condition": "treatment", "temp": "0.0",
             "em": 1.0, "abstain_rate": 0.0}]
    sig = build_significance(frame(rows), CFG)
    block = sig["results"]["0.0"]["closed"]
    assert block["n_items"] == 1 and block["unpaired"] == {"control_only": [], "treatment_only": ["triviaqa|b"]}
