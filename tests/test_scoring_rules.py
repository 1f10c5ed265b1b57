"""Scoring rules of CONTRACT section 6, including the traps the reference project fell into."""

from __future__ import annotations

import pytest

from config.schema import Unsupported
from scoring.abstention import ABSTENTION_PHRASES, is_abstention
from scoring.normalize import exact_match, f1_score, normalize_answer
from scoring.rules import score_response
from scoring.unsupported import unsupported_flag

pytestmark = pytest.mark.unit

UNANS = {"dataset": "squad_v2", "id": "u1", "context": "The castle was built in 1200 by the king.",
         "question": "Who destroyed it?", "answers": [], "is_unanswerable": True}
ANS = {"dataset": "squad_v2", "id": "a1", "context": "The castle was built in 1200 by King Harold.",
       "question": "Who built it?", "answers": ["King Harold", "Harold"], "is_unanswerable": False}
CLOSED = {"dataset": "triviaqa", "id": "t1", "question": "Capital of France?", "answers": ["Paris", "Paree"]}


@pytest.mark.parametrize("text,expected", [
    ("The Cat!", "cat"),
    ("  a  quick\tbrown   fox ", "quick brown fox"),
    ("“Quoted” – dash … ellipsis’s", "quoted dash ellipsiss"),
    ("An apple, the pear.", "apple pear"),
    ("¿Qué? «bien»", "qué bien"),
    ("theatre anthem", "theatre anthem"),  # articles only as whole words
])
def test_normalize(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_em_and_f1() -> None:
    assert exact_match("the Paris.", ["paris"]) == 1.0
    assert exact_match("Paris, France", ["paris"]) == 0.0
    assert exact_match("Paris", "paris") == 1.0  # a single gold string is not iterated char by char
    assert f1_score("cat sat", ["the cat sat down"]) == pytest.approx(0.8)
    assert f1_score("x", ["cat sat down", "x y"]) == pytest.approx(2 / 3)  # max over golds
    assert f1_score("cat cat", ["cat"]) == pytest.approx(2 / 3)  # multiset, not set
    assert f1_score("anything", []) == 0.0


@pytest.mark.parametrize("text", [
    "I don't know.", "I don’t know.", "I don‘t know", "I dont know", "i don't know!!", "I don't know…",
    "**I don't know**", "\"I don't know.\"", "I do not know.", "I'm not sure.", "I’m not sure",
    "Unknown", "unknown.", "Cannot be determined from the context.", "No answer", "unanswerable",
    "I don't know. The passage does not say who.", "The context does not say.", "N/A",
])
def test_abstentions(text: str) -> None:
    assert is_abstention(text)


@pytest.mark.parametrize("text", [
    "Tomb of the Unknown Soldier", "The Unknown Soldier", "unknown artist Banksy", "I know",
    "Paris", "I don't knowledge", "Knowing Me, Knowing You", "No Answer Blues band", "",
    "I don't know why, but it is 1200",  # answer after the phrase, no sentence break
    "I don't know, but probably Paris",  # hedged answer: an answer
])
def test_not_abstentions(text: str) -> None:
    assert not is_abstention(text)


def test_phrase_list_is_documented_and_normalised() -> None:
    assert "i don't know" in ABSTENTION_PHRASES and "unknown" in ABSTENTION_PHRASES
    assert all(p == p.lower().strip() for p in ABSTENTION_PHRASES)


def test_unanswerable_abstain_is_correct() -> None:
    for text in ("I don't know.", "I don’t know!", ""):
        assert score_response(UNANS, text, "open") == {
            "em": 1.0, "f1": 1.0, "abstained": 1, "false_answer": 0, "unsupported": 0, "contains_answer": 1.0}


def test_unanswerable_answer_is_false_answer() -> None:
    res = score_response(UNANS, "The king", "open")
    assert res["em"] == 0.0 and res["f1"] == 0.0 and res["false_answer"] == 1 and res["abstained"] == 0
    assert res["unsupported"] == 0  # "king" is in the passage
    assert score_response(UNANS, "A dragon", "open")["unsupported"] == 1


def test_answerable_wrong_is_not_false_answer() -> None:
    res = score_response(ANS, "The queen", "open")
    assert res == {"em": 0.0, "f1": 0.0, "abstained": 0, "false_answer": 0, "unsupported": 1,
                   "contains_answer": 0.0}
    right = score_response(ANS, "king harold.", "open")
    assert right["em"] == 1.0 and right["f1"] == 1.0 and right["unsupported"] == 0
    idk = score_response(ANS, "I don't know", "open")
    assert idk["abstained"] == 1 and idk["em"] == 0.0 and idk["false_answer"] == 0 and idk["unsupported"] == 0


def test_closed_book_has_only_em_and_abstained() -> None:
    assert score_response(CLOSED, "paree!", "closed") == {
        "em": 1.0, "f1": None, "abstained": 0, "false_answer": None, "unsupported": None,
        "contains_answer": 1.0}
    assert score_response(CLOSED, "Unknown.", "closed")["abstained"] == 1
    with pytest.raises(ValueError):
        score_response(CLOSED, "x", "book")


def test_unsupported_strategies() -> None:
    ctx = "The castle was built in 1200 by King Harold of Wessex."
    base = Unsupported(strategy="baseline")
    assert unsupported_flag("King Harold", ctx, base) == 0
    assert unsupported_flag("Harold King", ctx, base) == 1  # not a contiguous span
    assert unsupported_flag("Kin", ctx, base) == 1  # token boundary, not substring
    loose = Unsupported(strategy="overlap", threshold=0.5, min_token_overlap=1)
    assert unsupported_flag("Harold King", ctx, loose) == 0
    assert unsupported_flag("Harold the Great", ctx, loose) == 0  # 1 of 2 tokens ("the" removed)
    assert unsupported_flag("Edward the Great", ctx, loose) == 1
    strict = Unsupported(strategy="overlap", threshold=1.0, min_token_overlap=2)
    assert unsupported_flag("Harold", ctx, strict) == 1  # overlap 1 < min 2
    assert unsupported_flag("King Harold", ctx, strict) == 0
