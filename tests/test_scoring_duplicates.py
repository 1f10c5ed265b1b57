"""A repeated custom_id in predictions.csv is refused by every stage that reads it (issue 12.7): one
line naming the first duplicate, exit status 2, nothing written; never averaged in twice."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from config.schema import EvalConfig
from producer.cli import main as producer_main
from producer.cli.cmd_costs import costs as costs_main
from producer.cli.cmd_score import score as score_main
from scoring.aggregate import ScoringInputError
from scoring.pipeline import analyse_trial
from scoring.report import write_report
from tests.support.scoring_inputs import make_inputs

pytestmark = pytest.mark.unit


def _duplicate_a_row(results: Path) -> str:
    """Append a second copy of a row (its answer changed, as a re-run would) and return its custom_id."""
    path = results / "predictions.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    extra = list(rows[5])
    extra[9] = "I don't know."
    rows.insert(7, extra)
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return extra[0]


def _one_line_error(res, cid: str) -> None:
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output, res.output
    assert f"duplicate custom_id {cid!r}" in res.output and "row 7" in res.output and "row 5" in res.output


@pytest.fixture()
def dup(tmp_path: Path) -> tuple[Path, Path, str]:
    prepared, results = make_inputs(tmp_path / "run_x" / "trial")
    (tmp_path / "run_x" / "effective_config.yaml").write_text(
        "local_engine: dry_run\nstats: {bootstrap_samples: 100, permutation_samples: 100}\n", encoding="utf-8")
    return prepared, results, _duplicate_a_row(results)


def test_score_stage_refuses_duplicates(dup: tuple[Path, Path, str]) -> None:
    prepared, results, cid = dup
    res = CliRunner().invoke(score_main, ["--pred_csv", str(results / "predictions.csv"), "--prepared_dir",
                                          str(prepared), "--out_dir", str(results)])
    _one_line_error(res, cid)
    assert not (results / "per_item_scores.csv").exists()


def test_costs_stage_refuses_duplicates(dup: tuple[Path, Path, str]) -> None:
    _, results, cid = dup
    res = CliRunner().invoke(costs_main, ["--pred_csv", str(results / "predictions.csv"), "--out_path",
                                          str(results / "costs.json")])
    _one_line_error(res, cid)
    assert not (results / "costs.json").exists()


def test_analyse_refuses_duplicates(dup: tuple[Path, Path, str]) -> None:
    prepared, results, cid = dup
    res = CliRunner().invoke(producer_main, ["analyse", "--results_dir", str(results), "--prepared_dir",
                                             str(prepared), "--no-report"])
    _one_line_error(res, cid)
    assert not (results / "per_item_scores.csv").exists() and not (results / "significance.json").exists()
    with pytest.raises(ScoringInputError, match="duplicate custom_id"):
        analyse_trial(results, prepared, EvalConfig(local_engine="dry_run"))


def test_report_says_predictions_repeat_a_row(dup: tuple[Path, Path, str]) -> None:
    _, results, cid = dup
    md = write_report(results, None, figures=False)["report_md"].read_text(encoding="utf-8")
    assert "predictions.csv: not available" in md
    assert f"duplicate custom_id '{cid}'" in md  # shown as an unreadable artifact, not counted twice


def test_analyse_of_an_empty_predictions_file_is_one_line(dup: tuple[Path, Path, str]) -> None:
    """A 0-byte predictions.csv (issue 30, item 7): pandas' EmptyDataError traceback and exit 1 before."""
    prepared, results, _ = dup
    (results / "predictions.csv").write_bytes(b"")
    res = CliRunner().invoke(producer_main, ["analyse", "--results_dir", str(results), "--prepared_dir",
                                             str(prepared), "--no-report"])
    assert res.exit_code == 2, res.output
    assert res.output.count("\n") == 1 and "Traceback" not in res.output and "is empty" in res.output
