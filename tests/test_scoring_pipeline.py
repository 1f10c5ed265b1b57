"""per_item_scores.csv and analyse_trial from real files (CONTRACT sections 4, 5, 8)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.atomic import write_csv_atomic, write_jsonl_atomic
from config.contract import PER_ITEM_COLUMNS, PREDICTIONS_COLUMNS
from config.schema import EvalConfig
from producer.cli.cmd_score import score as score_main
from scoring.aggregate import ScoringInputError
from scoring.pipeline import analyse_trial
from tests.support.scoring_inputs import CLOSED, make_inputs

pytestmark = pytest.mark.unit


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_score_cli_writes_contract_columns(tmp_path: Path) -> None:
    prepared, results = make_inputs(tmp_path)
    res = CliRunner().invoke(score_main, ["--pred_csv", str(results / "predictions.csv"),
                                          "--prepared_dir", str(prepared), "--out_dir", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    rows = read_rows(tmp_path / "o" / "per_item_scores.csv")
    assert tuple(rows[0].keys()) == PER_ITEM_COLUMNS == tuple(sorted(PER_ITEM_COLUMNS))
    assert len(rows) == 4 * 2 * 2  # items x conditions x temps
    by = {(r["item_key"], r["condition"], r["temp"]): r for r in rows}
    s2c = by[("squad_v2|s2", "control", "0.7")]
    assert float(s2c["em"]) == pytest.approx(1 / 3) and float(s2c["false_answer_rate"]) == pytest.approx(2 / 3)
    assert float(s2c["em_std"]) == pytest.approx(0.5773502691896257)  # sample SD (n-1) of 0,1,0
    s2t = by[("squad_v2|s2", "treatment", "0.7")]
    assert (s2t["em"], s2t["abstain_rate"], s2t["false_answer_rate"], s2t["em_std"]) == ("1.0", "1.0", "0.0", "0.0")
    single = by[("squad_v2|s1", "control", "0.0")]
    assert single["em_std"] == "0.0" and single["f1_std"] == "0.0"  # K = 1
    closed = by[("nq_open|n1", "treatment", "0.7")]
    assert closed["type"] == "closed"
    for col in ("f1", "f1_std", "false_answer_rate", "false_answer_rate_std", "unsupported_rate",
                "unsupported_rate_std"):
        assert closed[col] == ""
    assert float(closed["abstain_rate"]) == pytest.approx(1 / 3)


def test_score_cli_unknown_item_is_one_line_error(tmp_path: Path) -> None:
    prepared, results = make_inputs(tmp_path)
    write_jsonl_atomic(prepared / "closed_book.jsonl", CLOSED[:1])
    res = CliRunner().invoke(score_main, ["--pred_csv", str(results / "predictions.csv"),
                                          "--prepared_dir", str(prepared), "--out_dir", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "nq_open|n1" in res.output and "Traceback" not in res.output and res.output.count("\n") == 1
    rows = read_rows(results / "predictions.csv")
    rows[0]["type"] = "book"
    write_csv_atomic(results / "bad.csv", PREDICTIONS_COLUMNS, rows)
    bad = CliRunner().invoke(score_main, ["--pred_csv", str(results / "bad.csv"),
                                          "--prepared_dir", str(prepared), "--out_dir", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "'book'" in bad.output and bad.output.count("\n") == 1
    missing = CliRunner().invoke(score_main, ["--pred_csv", str(tmp_path / "nope.csv"),
                                              "--prepared_dir", str(prepared), "--out_dir", str(tmp_path)])
    assert missing.exit_code == 2 and "predictions not found" in missing.output


def test_analyse_trial_end_to_end(tmp_path: Path) -> None:
    prepared, results = make_inputs(tmp_path)
    cfg = EvalConfig.model_validate({"local_engine": "dry_run",
                                   "stats": {"bootstrap_samples": 200, "permutation_samples": 200}})
    out = analyse_trial(results, prepared, cfg)
    assert set(out) == {"scored", "stats", "costs", "report", "headline"} and out["report"] is None
    sig = json.loads((results / "significance.json").read_text(encoding="utf-8"),
                     parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert sig["schema_version"] == 2 and sig["temps"] == ["0.0", "0.7"]
    open_block = sig["results"]["0.7"]["open"]
    assert open_block["n_items"] == 2
    assert open_block["metrics"]["false_answer_rate"]["delta_mean"] == pytest.approx((0 - 2 / 3) / 2)
    closed = sig["results"]["0.0"]["closed"]
    assert set(closed["metrics"]) == {"em", "abstain_rate", "contains_answer"}
    assert set(closed["subgroups"]["dataset"]) == {"triviaqa", "nq_open"}
    assert closed["subgroups"]["dataset"]["nq_open"]["n_items"] == 1  # n = 1 subgroup still reported
    assert (results / "costs.json").is_file() and (results / "per_item_scores.csv").is_file()


def test_analyse_trial_records_stages_in_manifest(tmp_path: Path) -> None:
    prepared, results = make_inputs(tmp_path)
    (results / "trial_manifest.json").write_text(json.dumps({"schema_version": 2, "usage_estimated": True}),
                                                 encoding="utf-8")
    cfg = EvalConfig.model_validate({"local_engine": "dry_run",
                                     "stats": {"bootstrap_samples": 100, "permutation_samples": 100}})
    analyse_trial(results, prepared, cfg)
    manifest = json.loads((results / "trial_manifest.json").read_text(encoding="utf-8"))
    stages = manifest["stage_status"]
    assert [stages[s]["status"] for s in ("scored", "stats", "costs", "report")] == ["done", "done", "done", "skipped"]
    assert stages["stats"]["artifacts"][0].endswith("significance.json")
    costs = json.loads((results / "costs.json").read_text(encoding="utf-8"))
    assert costs["usage_estimated"] is True
    (prepared / "open_book.jsonl").write_text("", encoding="utf-8")  # items gone: scoring fails
    with pytest.raises(ScoringInputError):
        analyse_trial(results, prepared, cfg)
    failed = json.loads((results / "trial_manifest.json").read_text(encoding="utf-8"))["stage_status"]["scored"]
    assert failed["status"] == "failed" and "not in the prepared items" in failed["error"]


def test_producer_analyse_command(tmp_path: Path) -> None:
    from producer.cli import main as producer_main

    prepared, results = make_inputs(tmp_path / "run_x" / "trial")
    (tmp_path / "run_x" / "effective_config.yaml").write_text(
        "local_engine: dry_run\nstats: {bootstrap_samples: 100, permutation_samples: 100}\n", encoding="utf-8")
    res = CliRunner().invoke(producer_main, ["analyse", "--results_dir", str(results), "--prepared_dir",
                                             str(prepared), "--no-report"])
    assert res.exit_code == 0, res.output
    assert "report: skipped" in res.output and (results / "significance.json").is_file()
    res = CliRunner().invoke(producer_main, ["analyse", "--results_dir", str(tmp_path)])
    assert res.exit_code == 2 and "effective_config.yaml" in res.output and res.output.count("\n") == 1
