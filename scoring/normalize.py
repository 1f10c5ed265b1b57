"""Answer normalisation, exact match and token F1 (CONTRACT section 6).

Why: every backend and every scorer must agree on what "the same answer" means. Normalisation is the
SQuAD recipe extended to Unicode punctuation (’ “ ” – … are removed, not just ASCII).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

_ARTICLES = re.compile(r"\b(a|an|the)\b", flags=re.UNICODE)
# Every code point whose Unicode category starts with "P" (punctuation), ASCII included.
# Planes 0 and 1 hold every assigned punctuation character (no P* code point lies above U+1FFFF).
PUNCTUATION_CODEPOINTS = tuple(cp for cp in range(0x20000) if unicodedata.category(chr(cp)).startswith("P"))
_PUNCT_TABLE: dict[int, str | None] = dict.fromkeys(PUNCTUATION_CODEPOINTS)
# ASCII symbols that SQuAD's string.punctuation also strips but Unicode files under "S" ($+<=>^`|~).
_PUNCT_TABLE.update(dict.fromkeys(map(ord, "$+<=>^`|~")))


@lru_cache(maxsize=262_144)
def normalize_answer(text: str) -> str:
    """Lower-case, remove punctuation (ASCII and Unicode), remove articles, collapse whitespace."""
    text = (text or "").lower().translate(_PUNCT_TABLE)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


@lru_cache(maxsize=262_144)
def _tokens(normalized: str) -> tuple[str, ...]:
    return tuple(normalized.split())


def scorable_golds(golds: Iterable[str]) -> list[str]:
    """Gold answers that survive normalisation; [""] when none does (an empty gold means "no answer").

    Why: the official SQuAD v2 evaluation drops gold answers that normalise to empty ("The", "a") before
    scoring (``get_raw_scores``); kept, they would give an empty prediction EM 1 on an answerable question.
    """
    if isinstance(golds, str):
        golds = [golds]
    return [g for g in golds if normalize_answer(g)] or [""]


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    """1.0 when the normalised prediction equals any scorable normalised gold answer, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in scorable_golds(golds)))


def contains_gold(prediction: str, golds: Iterable[str]) -> float:
    """1.0 when some scorable gold's normalised tokens occur as a contiguous run of the normalised
    prediction's tokens (answer recall, issue 29), else 0.0.

    Why tokens, not substrings: "Canberra" is in "the capital is canberra" but "art" is not in "start".
    """
    pred = _tokens(normalize_answer(prediction))
    for gold in scorable_golds(golds):
        want = _tokens(normalize_answer(gold))
        if want and any(pred[i:i + len(want)] == want for i in range(len(pred) - len(want) + 1)):
            return 1.0
    return 0.0


def _f1_tokens(pred: tuple[str, ...], gold: tuple[str, ...]) -> float:
    if not pred or not gold:
        return float(pred == gold)
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred)
    recall = same / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: Iterable[str]) -> float:
    """Token-multiset F1 between normalised prediction and each scorable gold; the maximum over golds.

    As in the official SQuAD v2 script, no scorable gold means the gold is "" (F1 1 only for an empty
    prediction); the unanswerable case itself is handled by the rules, not here.
    """
    pred = _tokens(normalize_answer(prediction))
    best = 0.0
    for gold in scorable_golds(golds):
        best = max(best, _f1_tokens(pred, _tokens(normalize_answer(gold))))
        if best == 1.0:
            break
    return best
