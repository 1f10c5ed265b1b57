"""Report wording that must not mislead (issue 29, item 2): false answers also counted over the unanswerable
questions, counts in the right number, the datasets that really ran, a plot axis in points that reads as
points, and a finished report that says its real state (not "report: running", not "not available")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from config.contract import TRIAL_MANIFEST_JSON
from config.schema import EvalConfig, StatsConfig
from config.wording import plural
from producer.runs.run_records import StageEntry, TrialManifest
from scoring.pipeline import analyse_trial
from tests.support.scoring_inputs import make_inputs

pytestmark = pytest.mark.unit

CFG = EvalConfig.model_validate({"local_engine": "dry_run",
                                 "stats": {"bootstrap_samples": 200, "permutation_samples": 200}})


def _trial_with_report(tmp_path: Path) -> tuple[Path, dict, str]:
    """The shared scoring inputs analysed with a trial manifest, as the queue does; (results, out, report.md)."""
    prepared, results = make_inputs(tmp_path)
    manifest = TrialManifest(run_id="r1", stage_status={"generated": StageEntry(status="done")})
    (results / TRIAL_MANIFEST_JSON).write_text(manifest.model_dump_json(), encoding="utf-8")
    out = analyse_trial(results, prepared, CFG, reports_dir=tmp_path / "reports")
    return results, out, (tmp_path / "reports" / "report.md").read_text(encoding="utf-8")


def test_false_answers_are_also_counted_over_the_unanswerable_questions(tmp_path):
    """1 of 2 open-book items is unanswerable: at T = 0 control answered it ("In 1300"), treatment abstained."""
    _, out, _ = _trial_with_report(tmp_path)
    first = out["headline"][0]
    assert "from 50.0% to 0.0% of open-book items; 1 of 1 unanswerable question answered in control, " \
           "0 of 1 in treatment (95% CI" in first, first
    at_07 = next(s for s in out["headline"] if s.startswith("At temperature 0.7") and "false-answer" in s)
    assert "; 0.7 of 1 unanswerable question answered in control, 0 of 1 in treatment (" in at_07  # 2 of 3 samples


def test_the_finished_report_says_its_stage_is_done_and_token_counts_are_from_the_engine(tmp_path):
    from workers.export import _update_manifest

    prepared, results = make_inputs(tmp_path)
    manifest = results / TRIAL_MANIFEST_JSON
    manifest.write_text(TrialManifest(run_id="r1").model_dump_json(), encoding="utf-8")
    _update_manifest({"manifest": manifest, "results_dir": results, "results": 24, "failed": 0, "cache_hits": 0,
                      "transcripts": 12, "usage_estimated": False})
    assert json.loads(manifest.read_text(encoding="utf-8"))["usage_estimated"] is False
    analyse_trial(results, prepared, CFG, reports_dir=tmp_path / "reports")
    md = (tmp_path / "reports" / "report.md").read_text(encoding="utf-8")
    assert "report: running" not in md and "report: done" in md
    assert "Token counts: reported by the engine." in md and "whether they were estimated" not in md
    assert json.loads(manifest.read_text(encoding="utf-8"))["stage_status"]["report"]["status"] == "done"


def test_counts_are_in_the_right_number():
    from scoring.report_text import mcnemar_sentence

    assert [plural(1, "item"), plural(0, "item"), plural(7, "item"), plural(1.5, "item"), plural(2, "query", "queries")] \
        == ["1 item", "0 items", "7 items", "1.5 items", "2 queries"]
    text = mcnemar_sentence({"mcnemar": {"b": 1, "c": 1, "p_exact": 1.0}})
    assert "treatment fixed 1 item that control got wrong" in text


def test_changed_lists_say_one_item(tmp_path):
    from scoring.report_changed import changed_section

    _trial_with_report(tmp_path)
    from scoring.changed_items import paired_items

    pairs = [p for p in paired_items(tmp_path / "results", tmp_path / "prepared") if p.temp == "0.0"]
    texts = [getattr(b, "text", "") for b in changed_section([p for p in pairs if p.item_id != "s1"])]
    assert any("(of 2 paired items)" in t for t in texts) and any("(of 1 paired item)" in t for t in texts)
    assert "Treatment fixed (1 item)" in texts and not any("1 items" in t for t in texts)


def _closed_trial(run_dir: Path, dataset: str) -> None:
    from scoring.stats import build_significance

    rows = []
    for i in range(12):
        for cond, em in (("control", 0.0), ("treatment", float(i % 2))):
            rows.append({"item_key": f"{dataset}|q{i}", "type": "closed", "condition": cond, "temp": "0.0", "em": em,
                         "abstain_rate": 0.0, "f1": np.nan, "false_answer_rate": np.nan, "unsupported_rate": np.nan})
    sig = build_significance(pd.DataFrame(rows), StatsConfig(bootstrap_samples=100, permutation_samples=100))
    results = run_dir / "trial-a" / "results"
    results.mkdir(parents=True)
    (results / "significance.json").write_text(json.dumps(sig), encoding="utf-8")


def test_the_sweep_summary_names_the_datasets_that_ran(tmp_path):
    from scoring.report_text import Para
    from scoring.summary import build_summary

    _closed_trial(tmp_path / "run_x", "my_quiz")
    doc = build_summary(tmp_path / "run_x", tmp_path / "figs")
    heads = [b.text for b in doc if isinstance(b, Para) and b.kind == "headline"]
    assert heads and "closed-book questions (my_quiz)" in heads[0] and "TriviaQA" not in heads[0]


def test_a_forest_axis_in_points_is_never_a_fraction_of_a_point():
    from scoring.figures import x_limits

    assert x_limits([0.0, 0.0], [None, 0.0], [None, 0.0]) == (-5.0, 5.0)
    low, high = x_limits([12.0], [-3.0], [30.0])
    assert low == -high and high == pytest.approx(33.0)


def test_one_paired_item_is_said_so():
    """The console headline of a one-item trial said "1 paired items"."""
    from scoring.report_sig import EffectRow
    from scoring.report_text import effect_sentence

    row = EffectRow("0.0", "open", "false_answer_rate", None, 1, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0)
    text = effect_sentence(row, None)
    assert "1 paired item)" in text and "1 paired items" not in text
