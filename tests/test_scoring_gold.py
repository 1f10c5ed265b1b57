"""Gold answers that normalise to empty are dropped, exactly as the official SQuAD v2 evaluation script
does (issue 12.9). The script's functions are written out below as the reference."""

from __future__ import annotations

import collections
import re
import string

import pytest

from scoring.normalize import exact_match, f1_score
from scoring.rules import abstains, score_response

pytestmark = pytest.mark.unit


# ---- The official SQuAD v2.0 evaluation script (evaluate-v2.0.py), the functions scoring uses ----
def official_normalize_answer(s: str) -> str:
    def remove_articles(text: str) -> str:
        regex = re.compile(r"\b(a|an|the)\b", re.UNICODE)
        return re.sub(regex, " ", text)

    def white_space_fix(text: str) -> str:
        return " ".join(text.split())

    def remove_punc(text: str) -> str:
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def official_get_tokens(s: str) -> list[str]:
    if not s:
        return []
    return official_normalize_answer(s).split()


def official_compute_exact(a_gold: str, a_pred: str) -> int:
    return int(official_normalize_answer(a_gold) == official_normalize_answer(a_pred))


def official_compute_f1(a_gold: str, a_pred: str) -> float:
    gold_toks = official_get_tokens(a_gold)
    pred_toks = official_get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        # If either is no-answer, then F1 is 1 if they agree, 0 otherwise
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def official_raw_scores(answers: list[str], a_pred: str) -> tuple[int, float]:
    """get_raw_scores for one question: golds that normalise to empty are dropped, [''] if none remain."""
    gold_answers = [a for a in answers if official_normalize_answer(a)]
    if not gold_answers:
        # For unanswerable questions, only correct answer is empty string
        gold_answers = [""]
    return (max(official_compute_exact(a, a_pred) for a in gold_answers),
            max(official_compute_f1(a, a_pred) for a in gold_answers))
# ---- end of the official functions ----


GOLDS = [["The"], ["a"], ["The", "Paris"], ["a", "the Eiffel Tower"], ["An", "A", "Harold Godwinson"],
         ["Paris", "paris, France"], [], ["The Nile", "the"]]
PREDICTIONS = ["", "the", "The.", "a", "Paris", "Eiffel Tower", "the Eiffel tower!", "Harold", "France Paris",
               "Nile", "an", "London"]


@pytest.mark.parametrize("golds", GOLDS, ids=lambda g: "|".join(g) or "none")
def test_exact_match_and_f1_equal_the_official_script(golds: list[str]) -> None:
    for pred in PREDICTIONS:
        em, f1 = official_raw_scores(golds, pred)
        assert exact_match(pred, golds) == em, (golds, pred)
        assert f1_score(pred, golds) == pytest.approx(f1), (golds, pred)


def test_empty_response_on_answerable_item_with_article_gold_is_wrong() -> None:
    """The audit's case: gold answers "The" and "Paris"; an empty response got EM 1 and F1 1."""
    item = {"dataset": "squad_v2", "id": "q1", "context": "Paris is the capital.", "question": "Capital?",
            "answers": ["The", "Paris"], "is_unanswerable": False}
    scored = score_response(item, "", "open")
    assert (scored["em"], scored["f1"]) == official_raw_scores(item["answers"], "") == (0, 0)
    assert score_response(item, "Paris", "open")["em"] == 1.0


@pytest.mark.parametrize("answers", [["The"], ["a", "An"]])
def test_item_whose_golds_all_normalise_to_empty_scores_like_the_official_script(answers: list[str]) -> None:
    """No gold survives: the official gold is "" (no answer), so only "no answer" (an abstention here,
    the empty prediction there) scores 1."""
    item = {"dataset": "squad_v2", "id": "q2", "context": "A passage.", "question": "?", "answers": answers,
            "is_unanswerable": False}
    for response in ("I don't know.", "", "Paris", "The"):
        official_pred = "" if abstains(response) else response
        em, f1 = official_raw_scores(answers, official_pred)
        scored = score_response(item, response, "open")
        assert (scored["em"], scored["f1"]) == (em, pytest.approx(f1)), response
