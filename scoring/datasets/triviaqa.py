"""triviaqa: scored as closed-book by scoring.rules.score_response (nothing dataset-specific beyond that)."""

from __future__ import annotations

from typing import Any

from config.schema import Unsupported
from scoring.rules import score_response

TYPE = "closed"


def score(item: dict[str, Any], text: str, unsupported: Unsupported | None = None) -> dict[str, Any]:
    """Score one triviaqa response."""
    return score_response(item, text, TYPE, unsupported)
