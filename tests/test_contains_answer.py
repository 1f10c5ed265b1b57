"""The lenient contains-answer metric (issue 29): a gold answer, normalised, stands on token boundaries in
the normalised reply. SmolLM2 answers "The capital city of Australia is Canberra." (gold: Canberra): EM 0,
contains-answer 1. It is scored, averaged, tested and shown beside EM and F1 (docs/contract.md sections 5-7).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from config.atomic import write_csv_atomic, write_jsonl_atomic
from config.contract import PER_ITEM_COLUMNS, PREDICTIONS_COLUMNS, build_custom_id
from config.schema import StatsConfig
from scoring.normalize import contains_gold
from scoring.rules import score_response

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("reply", "golds", "expected"), [
    ("The capital city of Australia is Canberra.", ["Canberra"], 1.0),
    ("It was CANBERRA!", ["canberra"], 1.0),
    ("He was born in New York City.", ["New York City", "NYC"], 1.0),
    ("He started the war.", ["art"], 0.0),  # a substring inside a word is not the answer
    ("York, New", ["New York"], 0.0),  # the gold's tokens in order
    ("The answer is the Beatles", ["The Beatles"], 1.0),  # articles removed on both sides
    ("Sydney", ["Canberra"], 0.0),
])
def test_contains_gold_on_normalised_token_boundaries(reply, golds, expected):
    assert contains_gold(reply, golds) == expected


def test_rules_score_contains_answer_for_both_types():
    closed = {"answers": ["Canberra"]}
    assert score_response(closed, "The capital city of Australia is Canberra.", "closed")["contains_answer"] == 1.0
    assert score_response(closed, "The capital city of Australia is Canberra.", "closed")["em"] == 0.0
    assert score_response(closed, "I don't know.", "closed")["contains_answer"] == 0.0
    answerable = {"answers": ["Harold"], "context": "Harold built it.", "is_unanswerable": False}
    assert score_response(answerable, "It was built by Harold.", "open")["contains_answer"] == 1.0
    unanswerable = {"answers": [], "context": "x", "is_unanswerable": True}
    assert score_response(unanswerable, "I don't know.", "open")["contains_answer"] == 1.0  # as em: abstaining is right
    assert score_response(unanswerable, "Harold", "open")["contains_answer"] == 0.0


ITEMS = [{"dataset": "my_quiz", "id": f"q{i}", "question": f"Capital {i}?", "answers": [f"City{i}"]} for i in range(24)]


def _trial(root: Path, treatment_wordy: bool = True) -> tuple[Path, Path]:
    """A closed-book custom dataset: control says "I don't know."; treatment answers in a sentence
    (EM 0 in both arms, contains-answer 0 -> 1 on 21 of 24). Returns (results, prepared)."""
    prepared = root / "prepared"
    write_jsonl_atomic(prepared / "open_book.jsonl", [])
    write_jsonl_atomic(prepared / "closed_book.jsonl", ITEMS)
    rows = []
    for it in ITEMS:
        for cond in ("control", "treatment"):
            wordy = cond == "treatment" and treatment_wordy and it["id"] not in ("q0", "q4", "q8")
            text = f"The capital is {it['answers'][0]}." if wordy else "No idea, sorry"
            cid = build_custom_id("my_quiz", it["id"], cond, "0.0", 0, "closed")
            rows.append([cid, "my_quiz", it["id"], cond, "0.0", 0, "closed", f"r{len(rows)}", "stop", text, 10, 5, 15])
    results = root / "run_x" / "demo" / "results"
    write_csv_atomic(results / "predictions.csv", PREDICTIONS_COLUMNS, rows)
    return results, prepared


def _analyse(root: Path) -> tuple[Path, Path, dict]:
    from scoring.score_predictions import score_predictions
    from scoring.stats import run_stats

    results, prepared = _trial(root)
    per_item = score_predictions(results / "predictions.csv", prepared, results)
    sig = run_stats(per_item, StatsConfig(bootstrap_samples=200, permutation_samples=200), results / "significance.json")
    return results, prepared, json.loads(sig.read_text(encoding="utf-8"))


def test_per_item_scores_and_significance_carry_it(tmp_path):
    results, _, sig = _analyse(tmp_path)
    with (results / "per_item_scores.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == PER_ITEM_COLUMNS and "contains_answer" in rows[0]
    assert {r["condition"]: r["contains_answer"] for r in rows if r["item_key"] == "my_quiz|q1"} == {
        "control": "0.0", "treatment": "1.0"}
    block = sig["results"]["0.0"]["closed"]["metrics"]["contains_answer"]
    assert block["delta_mean"] == pytest.approx(21 / 24) and block["verdict"]["verdict"] == "better"
    assert block["wilcoxon"]["q_value"] is not None  # in the one BH family, like every metric's test
    assert sig["stats_config"]["fdr"]["n_tests"] == 4  # McNemar + em, abstain_rate, contains_answer


def test_the_power_plan_counts_the_new_test_in_the_family():
    from producer.planning.power_plan import TESTS_PER_BLOCK
    from scoring.stats import METRICS

    assert TESTS_PER_BLOCK == {t: 1 + len(m) for t, m in METRICS.items()}


def test_report_items_page_and_export_show_it(tmp_path):
    from scoring.export_table import tidy_rows
    from scoring.report import write_report

    results, prepared, sig = _analyse(tmp_path)
    out = write_report(results, tmp_path / "reports", figures=False, prepared_dir=prepared)
    md = out["report_md"].read_text(encoding="utf-8")
    assert "| contains answer | 0.0% | 87.5% |" in md
    page = out["items_html"].read_text(encoding="utf-8")
    assert '<span class="v contains">contains answer</span>The capital is City1.' in page
    assert 'data-treatment="contains"' in page and '<span class="v wrong">wrong</span>No idea, sorry' in page
    assert any(r["metric"] == "contains_answer" and r["delta"] == pytest.approx(21 / 24) for r in tidy_rows(sig))


def test_a_score_file_written_before_the_metric_still_reads(tmp_path):
    """per_item_scores.csv of an older run has no contains_answer column: stats and the report go on without it."""
    from scoring.changed_items import paired_items
    from scoring.stats import build_significance, run_stats

    results, prepared, _ = _analyse(tmp_path)
    old = pd.read_csv(results / "per_item_scores.csv", dtype={"temp": str})
    old.drop(columns=["contains_answer", "contains_answer_std"]).to_csv(results / "per_item_scores.csv", index=False)
    run_stats(results / "per_item_scores.csv", StatsConfig(bootstrap_samples=100, permutation_samples=100),
              results / "significance.json")
    sig = json.loads((results / "significance.json").read_text(encoding="utf-8"))
    assert "contains_answer" not in sig["results"]["0.0"]["closed"]["metrics"]
    assert paired_items(results, prepared)[0].treatment_contains is None
    assert build_significance(old.assign(contains_answer=np.nan), StatsConfig(bootstrap_samples=100,
                                                                              permutation_samples=100))["temps"] == ["0.0"]
