"""Reports that never mislead (issue 29, item 2): counts say what they count, in the right number."""

from __future__ import annotations

import pytest

from producer.cli.cmd_show import changed_summary
from scoring.report_text import mcnemar_sentence

pytestmark = pytest.mark.unit


def test_one_fixed_item_is_one_item():
    text = mcnemar_sentence({"mcnemar": {"b": 1, "c": 2, "p_exact": 1.0}})
    assert "fixed 1 item that control got wrong" in text and "broke 2 that" in text
    assert "fixed 3 items that" in mcnemar_sentence({"mcnemar": {"b": 3, "c": 0, "p_exact": 0.25}})


def test_show_changed_counts_items_not_rows():
    rows = [{"temp": "0.0", "type": "open", "item_key": "squad_v2|a", "change": c} for c in ("broke", "now_answers")]
    rows += [{"temp": "0.0", "type": "closed", "item_key": f"triviaqa|{i}", "change": "fixed"} for i in range(3)]
    line = changed_summary(rows, "r1")
    assert line.startswith("4 changed items (5 changes: an item can change in two ways);")
    assert changed_summary(rows[2:3], "r1").startswith("1 changed item;")


def test_a_shorter_progress_line_leaves_nothing_of_the_longer_one():
    from producer.cli.cmd_run import overwrite

    long, short = "[####] 10/20  2.0 req/min  ETA 16m45s", "[####] 11/20  2.0 req/min  ETA 1m5s"
    shown = overwrite(short, len(long))
    assert shown.startswith("\r" + short) and len(shown) == len(long) + 1 and shown[len(short) + 1:].strip() == ""


def test_the_rate_after_a_resume_does_not_count_the_stop():
    """Issue 29, item 2: after a resume the rate said 2.2 req/min (the stop counted) and the run was done
    15 s later."""
    from producer.ledger.status import recent_rate

    before = [1000.0 + i for i in range(10)]  # 10 results, then a 200 s stop
    after = [1210.0 + 0.5 * i for i in range(20)]  # 2 results a second since the resume
    assert recent_rate(before + after, now=1220.0) == pytest.approx(20 / 10 * 60)
    assert recent_rate([], now=5.0) == 0.0
    assert recent_rate(before, now=1010.0) == pytest.approx(10 / 10 * 60)


def test_em_at_zero_in_both_arms_while_f1_is_not_says_why(tmp_path):
    """Issue 29: SmolLM2 answers "The capital city of Australia is Canberra." (gold: Canberra): EM 0 in both
    arms whatever the prompt. The report says the answers are right but wordy instead of 'no change'."""
    import pandas as pd

    from scoring.report_data import ReportData
    from scoring.report_quality import floor_warnings

    data = ReportData(tmp_path)
    data.means = pd.DataFrame([
        {"temp": "0.0", "type": "closed", "condition": "control", "em": 0.0, "f1": 0.31},
        {"temp": "0.0", "type": "closed", "condition": "treatment", "em": 0.0, "f1": 0.25},
        {"temp": "0.0", "type": "open", "condition": "control", "em": 0.1, "f1": 0.4},
        {"temp": "0.0", "type": "open", "condition": "treatment", "em": 0.0, "f1": 0.3}])
    (warning,) = floor_warnings(data)
    assert "closed-book: EM is 0% in both conditions while F1 is 31" in warning.text and "wordy" in warning.text


def test_cache_hits_stay_out_of_the_engine_speed_figures():
    """Issue 29, item 2: with cache: true the report showed 59,375 requests per minute and p50 latency
    0.000133 s: the lookups' times. Speeds and latencies describe the engine; hits are counted apart."""
    from telemetry.local_costs import summarise

    def row(i: int, hit: bool, latency: float) -> dict:
        usage = {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}
        return {"custom_id": f"triviaqa|q{i}|control|0.0|0|closed", "latency_s": latency,
                "response": {"body": {"usage": usage}}, "engine": {"cache_hit": True} if hit else {}}

    out = summarise([row(0, False, 2.0), row(1, True, 0.0001), row(2, True, 0.0002)], wall_time_s=4.0)
    assert out["cache_hits"] == 2 and out["requests"] == 3
    assert out["latency_p50_s"] == 2.0 and out["latency_max_s"] == 2.0
    assert out["completion_tokens_per_s"] == pytest.approx(10 / 4.0)  # the one generated answer
    assert out["requests_per_minute"] == pytest.approx(60 / 4.0)
    assert out["completion_tokens"] == 30  # the totals still count every answer
