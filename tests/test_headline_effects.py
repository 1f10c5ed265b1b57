"""The first screen names every significant effect, not only the primary metrics' (issue 29, item 1).

Why: the demo's treatment makes SmolLM2 abstain on half the closed-book questions (q < 0.001), while the
headline's primary metrics (false answers, EM) do not move significantly; a headline that only says "no
significant change" hides the one thing the run showed.
"""

from __future__ import annotations

import pytest

from scoring.report_sig import effect_rows
from scoring.report_text import headline

pytestmark = pytest.mark.unit


def _metric(control: float, treatment: float, q: float, lo: float, hi: float) -> dict:
    return {"n_items": 50, "control_mean": control, "treatment_mean": treatment, "delta_mean": treatment - control,
            "ci_95": [lo, hi], "wilcoxon": {"W": 0.0, "p_value": q / 3, "q_value": q}, "perm_p_value": q}


def _sig(abstain_q: float) -> dict:
    closed = {"n_items": 50, "metrics": {"em": _metric(0.0, 0.02, 1.0, 0.0, 0.06),
                                         "abstain_rate": _metric(0.0, 0.48, abstain_q, 0.34, 0.62)}}
    open_ = {"n_items": 34, "metrics": {"false_answer_rate": _metric(0.324, 0.206, 0.085, -0.235, -0.029),
                                        "f1": _metric(0.144, 0.278, 0.085, 0.03, 0.26)}}
    return {"schema_version": 2, "temps": ["0.0"], "results": {"0.0": {"open": open_, "closed": closed}}}


def test_a_significant_secondary_effect_is_named_after_the_primary_ones() -> None:
    sig = _sig(1.4e-05)
    sentences = headline(effect_rows(sig), sig, None)
    assert sentences[0].startswith("At temperature 0.0, treatment made no significant change to the false-answer")
    also = sentences[-1]
    assert also.startswith("Also significant at temperature 0.0 (q < 0.05): ")
    assert "abstention rate on closed-book questions" in also and "+48.0 points" in also and "q = 1.4e-05" in also
    assert "F1" not in also  # q = 0.085 is not significant


def test_no_sentence_when_nothing_else_is_significant() -> None:
    sig = _sig(0.2)
    assert not any(s.startswith("Also significant") for s in headline(effect_rows(sig), sig, None))
