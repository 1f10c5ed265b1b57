"""Is a non-abstaining open-book answer supported by its passage? (CONTRACT section 6, config ``unsupported``)

Both strategies compare *normalised* text (scoring.normalize: lower-case, no punctuation, no articles):
- ``baseline``: supported when the answer's token sequence occurs contiguously in the passage's token
  sequence (the extractive-QA view: a SQuAD answer is a span of its passage). ``threshold`` and
  ``min_token_overlap`` are not used.
- ``overlap``: let A be the answer's distinct tokens and P the passage's token set; overlap = |A ∩ P|.
  Supported when overlap / |A| >= ``threshold`` and overlap >= ``min_token_overlap``. This forgives
  paraphrase ("in 1990" vs a passage saying "1990") at the cost of accepting recombined tokens.
An answer with no tokens after normalisation is treated as an abstention by the rules, never scored here.
Returns 1 (unsupported) or 0 (supported).
"""

from __future__ import annotations

from functools import lru_cache

from config.schema import Unsupported
from scoring.normalize import normalize_answer


@lru_cache(maxsize=4096)
def _passage(context: str) -> tuple[str, frozenset[str]]:
    norm = normalize_answer(context)
    return f" {norm} ", frozenset(norm.split())


def unsupported_flag(answer: str, context: str, cfg: Unsupported) -> int:
    """1 when ``answer`` is not supported by ``context`` under ``cfg.strategy``, else 0."""
    ans = normalize_answer(answer)
    tokens = ans.split()
    if not tokens:
        return 0
    padded, passage_tokens = _passage(context or "")
    if cfg.strategy == "baseline":
        return 0 if f" {ans} " in padded else 1
    distinct = set(tokens)
    overlap = len(distinct & passage_tokens)
    supported = overlap / len(distinct) >= cfg.threshold and overlap >= cfg.min_token_overlap
    return 0 if supported else 1
