"""The floor and ceiling warnings (issue 29): a metric at 0 % (or 100 %) in both arms cannot show an effect;
when EM sits at 0 % while F1 or contains-answer does not, the answers are right but wordy."""

from __future__ import annotations

import pandas as pd
import pytest

from scoring.report_data import ReportData
from scoring.report_quality import floor_warnings

pytestmark = pytest.mark.unit


def _data(tmp_path, rows: list[dict]) -> ReportData:
    data = ReportData(tmp_path)
    data.means = pd.DataFrame(rows)
    return data


def test_closed_book_em_floor_points_to_contains_answer(tmp_path):
    """Closed-book has no F1: the contains-answer rate alone shows that the answers are there."""
    data = _data(tmp_path, [
        {"temp": "0.0", "type": "closed", "condition": "control", "em": 0.0, "contains_answer": 0.55},
        {"temp": "0.0", "type": "closed", "condition": "treatment", "em": 0.0, "contains_answer": 0.7}])
    (warning,) = floor_warnings(data)
    assert warning.kind == "warning"
    assert "closed-book: EM is 0% in both conditions while contains-answer is 70.0%" in warning.text
    assert "answers are right but wordy" in warning.text and "see contains-answer" in warning.text


def test_open_book_names_f1_and_contains_answer(tmp_path):
    data = _data(tmp_path, [
        {"temp": "0.7", "type": "open", "condition": "control", "em": 0.0, "f1": 0.2, "contains_answer": 0.4},
        {"temp": "0.7", "type": "open", "condition": "treatment", "em": 0.0, "f1": 0.3, "contains_answer": 0.5}])
    (warning,) = floor_warnings(data)
    assert "while F1 is 30.0% and contains-answer is 50.0%: answers are right but wordy" in warning.text


def test_no_floor_warning_when_nothing_holds_the_answer_or_em_moves(tmp_path):
    data = _data(tmp_path, [
        {"temp": "0.0", "type": "closed", "condition": "control", "em": 0.0, "contains_answer": 0.0},
        {"temp": "0.0", "type": "closed", "condition": "treatment", "em": 0.0, "contains_answer": 0.0},
        {"temp": "0.7", "type": "closed", "condition": "control", "em": 0.1, "contains_answer": 0.5},
        {"temp": "0.7", "type": "closed", "condition": "treatment", "em": 0.0, "contains_answer": 0.5}])
    assert floor_warnings(data) == []


def test_a_ceiling_in_both_arms_is_named(tmp_path):
    data = _data(tmp_path, [
        {"temp": "0.0", "type": "closed", "condition": "control", "em": 0.5, "contains_answer": 1.0},
        {"temp": "0.0", "type": "closed", "condition": "treatment", "em": 0.6, "contains_answer": 1.0}])
    (warning,) = floor_warnings(data)
    assert "contains-answer is 100% in both conditions (a ceiling)" in warning.text
