"""costs.json from real predictions.csv files (CONTRACT section 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.schema import Pricing
from producer.cli.cmd_costs import costs as costs_main
from scoring.costs import compute_costs
from tests.support.scoring_inputs import make_inputs

pytestmark = pytest.mark.unit


def test_costs(tmp_path: Path) -> None:
    _, results = make_inputs(tmp_path)
    pricing = Pricing(input_per_mtok=1.0, output_per_mtok=2.0, batch_discount=0.5)
    local = compute_costs(results / "predictions.csv", pricing, "local")
    # 32 rows; none for (n1 sample 0 at both temps, both conditions -> 4)
    assert local["usage_records"] == 28 and local["rows_without_usage"] == 4
    assert local["prompt_tokens"] == 2800 and local["completion_tokens"] == 140 and local["total_tokens"] == 2940
    assert local["usd"] == pytest.approx((2800 * 1.0 + 140 * 2.0) / 1e6)
    assert local["usd_kind"] == "equivalent_cloud_cost" and local["batch_discount_applied"] is False
    fw = compute_costs(results / "predictions.csv", pricing, "fireworks")
    assert fw["usd"] == pytest.approx(local["usd"] * 0.5) and fw["batch_discount_applied"] is True
    cached = compute_costs(results / "predictions.csv", Pricing(input_per_mtok=1.0, output_per_mtok=0.0,
                                                                 cached_input_multiplier=0.25),
                           "local", cached_prompt_tokens=800)
    assert cached["usd"] == pytest.approx((2000 + 800 * 0.25) / 1e6)
    res = CliRunner().invoke(costs_main, ["--pred_csv", str(results / "predictions.csv"),
                                          "--out_path", str(tmp_path / "costs.json")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "costs.json").read_text(encoding="utf-8"))
    assert {"prompt_tokens", "completion_tokens", "total_tokens", "usd", "batch_discount_applied",
            "usage_records", "pricing"} <= set(data)


def test_costs_bad_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.csv"
    bad.write_text("custom_id\nx\n", encoding="utf-8")
    res = CliRunner().invoke(costs_main, ["--pred_csv", str(bad), "--out_path", str(tmp_path / "c.json")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "token columns" in res.output


def test_costs_use_cached_tokens_and_leave_out_rows_paid_by_another_trial(tmp_path: Path) -> None:
    """raw_results.jsonl beside predictions.csv: cached prompt tokens are charged at the cached price and
    rows a sweep reused from its owner trial (engine.shared_control_from) are not billed twice."""
    import pandas as pd

    from config.schema import EvalConfig
    from producer.runs.results_io import raw_result_row
    from scoring.costs import write_costs

    _, results = make_inputs(tmp_path)
    pred = pd.read_csv(results / "predictions.csv", dtype=object, keep_default_na=False)
    pred = pred[pred["prompt_tokens"] != ""].reset_index(drop=True)
    pred.to_csv(results / "predictions.csv", index=False)
    rows, shared = [], set(pred["custom_id"][:3])
    for i, r in pred.iterrows():
        usage = {"prompt_tokens": int(r["prompt_tokens"]), "completion_tokens": int(r["completion_tokens"])}
        if i in (5, 6):
            usage["prompt_tokens_details"] = {"cached_tokens": 40}
        engine = {"shared_control_from": "owner-trial"} if r["custom_id"] in shared else {}
        rows.append(raw_result_row(r["custom_id"], r["response_text"], "stop", usage, None, None, engine))
    (results / "raw_results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    cfg = EvalConfig(local_engine="dry_run",
                     pricing=Pricing(input_per_mtok=1.0, output_per_mtok=2.0, cached_input_multiplier=0.5))
    data = json.loads(write_costs(results / "predictions.csv", tmp_path / "costs.json", cfg).read_text(encoding="utf-8"))
    toks = pred[["prompt_tokens", "completion_tokens"]].astype(int)
    own = ~pred["custom_id"].isin(shared)
    assert data["prompt_tokens"] == toks["prompt_tokens"].sum()  # totals: every row of the trial
    assert data["shared_rows"] == 3 and data["cached_prompt_tokens"] == 80
    paid_prompt, paid_completion = toks["prompt_tokens"][own].sum(), toks["completion_tokens"][own].sum()
    assert data["usd"] == pytest.approx(((paid_prompt - 80) * 1.0 + 80 * 0.5 + paid_completion * 2.0) / 1e6)
