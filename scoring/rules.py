"""Score one response (CONTRACT section 6). Pure: the queue's CPU scoring tasks and the stage CLI share it.

Result keys: em, f1, abstained, false_answer, unsupported, contains_answer. Closed-book sets f1,
false_answer and unsupported to None (not applicable). contains_answer (issue 29, the lenient
"answer recall" used for chatty models on NQ-Open and TriviaQA) is 1 when a gold answer's normalised
tokens occur, in order and on token boundaries, in the normalised response: "The capital city of
Australia is Canberra." contains "Canberra". An abstention contains nothing; on an unanswerable
open-book item it is scored as em is (abstaining is the right answer). Open-book:
- unanswerable + abstain -> em = f1 = 1, abstained = 1, false_answer = 0, unsupported = 0;
- unanswerable + any answer -> em = f1 = 0, false_answer = 1, unsupported by the passage check;
- answerable -> em, f1 against the golds; false_answer = 0 (a wrong answer to an answerable question
  is wrong, not a false answer); unsupported by the passage check unless the response abstained.
An empty response (nothing left after normalisation) counts as an abstention, as in SQuAD v2, where the
empty prediction means "no answer". Gold answers that normalise to empty are dropped, as the official
SQuAD v2 script drops them; an item with none left is unanswerable. A ``length`` finish is scored as written.
"""

from __future__ import annotations

from typing import Any

from config.schema import Unsupported
from scoring.abstention import is_abstention
from scoring.normalize import contains_gold, exact_match, f1_score, normalize_answer
from scoring.unsupported import unsupported_flag


def golds_of(item: dict[str, Any]) -> list[str]:
    """The item's gold answers without those that normalise to empty ("The", "a"), as the official
    SQuAD v2 evaluation drops them (an answer left empty by normalisation would match an empty response)."""
    answers = item.get("answers") or []
    answers = [answers] if isinstance(answers, str) else [str(a) for a in answers]
    return [a for a in answers if normalize_answer(a)]


def item_parts(item: dict[str, Any]) -> tuple[tuple[str, ...], bool, str]:
    """(golds, unanswerable, context) of an item (CONTRACT section 1 shape) for ``score_parts``.

    An item with no gold left after ``golds_of`` is unanswerable, as in the official SQuAD v2 script,
    whose gold then is "" (only "no answer", here an abstention, scores 1)."""
    golds = tuple(golds_of(item))
    unanswerable = bool(item.get("is_unanswerable")) or not golds
    return golds, unanswerable, str(item.get("context") or "")


def abstains(text: str) -> bool:
    """The response says it does not know, or says nothing at all."""
    return is_abstention(text) or not normalize_answer(text)


def score_response(item: dict[str, Any], text: str, type_: str, unsupported: Unsupported | None = None) -> dict[str, Any]:
    """Score ``text`` against ``item`` (CONTRACT section 1 shape) for ``type_`` "open" or "closed"."""
    return score_parts(*item_parts(item), text, type_, unsupported)


def score_parts(golds: tuple[str, ...], unanswerable: bool, context: str, text: str, type_: str,
                unsupported: Unsupported | None = None) -> dict[str, Any]:
    """score_response on an item already taken apart (the bulk scorer extracts each item once)."""
    text = text or ""
    abstained = abstains(text)
    if type_ == "closed":
        return {"em": exact_match(text, golds) if golds else 0.0, "f1": None, "abstained": int(abstained),
                "false_answer": None, "unsupported": None,
                "contains_answer": 0.0 if abstained or not golds else contains_gold(text, golds)}
    if type_ != "open":
        raise ValueError(f"type must be 'open' or 'closed', got {type_!r}")
    cfg = unsupported or Unsupported()
    flag = 0 if abstained else unsupported_flag(text, context, cfg)
    if unanswerable:
        em = f1 = contains = 1.0 if abstained else 0.0
        false_answer = 0 if abstained else 1
    else:
        em = exact_match(text, golds)
        f1 = f1_score(text, golds)
        contains = 0.0 if abstained else contains_gold(text, golds)
        false_answer = 0
    return {"em": em, "f1": f1, "abstained": int(abstained), "false_answer": false_answer, "unsupported": flag,
            "contains_answer": contains}
