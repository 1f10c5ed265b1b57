"""What every reader of a foreign log yields: the tool, its task and model, and one record per answer.

Why one shape: mapping answers onto our items, scoring and writing the run folder are the same whatever
tool wrote the log; a reader only knows its format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class ImportFormatError(ValueError):
    """A log this project cannot read (unknown format, damaged, missing fields): its message is one line."""


@dataclass
class ForeignSample:
    """One answer of the foreign log, with what the log says about its item."""

    ref: str  # the tool's own name of the sample (for messages)
    item_id: str | None
    question: str | None
    response: str
    sample_index: int = 0
    context: str | None = None
    answers: list[str] | None = None  # the gold answers, None when the log has none
    score: float | None = None  # the tool's own per-sample score (0..1)
    input_text: str | None = None  # what the tool sent (the user message or the prompt)
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    dataset: str | None = None  # when the sample names its dataset itself
    temperature: float | None = None  # when the sample records its own sampling temperature


@dataclass
class ForeignLog:
    """A foreign log read: ``tool`` is the program that wrote it, ``scorer`` the name of its per-sample metric."""

    tool: str
    log_format: str
    task: str | None
    model: str | None
    temperature: float | None
    scorer: str | None
    samples: list[ForeignSample] = field(default_factory=list)


SCORE_LETTERS = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}  # inspect_ai's CORRECT, INCORRECT, PARTIAL, NOANSWER


def score_value(value: Any) -> float | None:
    """A per-sample score as a number in 0..1 (inspect_ai's letters, booleans, numbers, "yes"/"no")."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text in SCORE_LETTERS:
            return SCORE_LETTERS[text]
        if text.lower() in ("yes", "true", "correct"):
            return 1.0
        if text.lower() in ("no", "false", "incorrect"):
            return 0.0
        try:
            return float(text)
        except ValueError:
            return None
    return None


def as_text(value: Any) -> str:
    """A response as text: content parts joined, a structured output as its JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [p.get("text", "") if isinstance(p, dict) else str(p) for p in value]
        return "".join(p for p in parts if isinstance(p, str))
    return json.dumps(value, ensure_ascii=False)


def answer_list(value: Any) -> list[str] | None:
    """Gold answers as a list of text; None when there are none to score with."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value] if value.strip() else None
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value]
    return None


def need(obj: Any, key: str, where: str) -> Any:
    """``obj[key]`` or the one-line refusal that names the missing field."""
    if not isinstance(obj, dict) or key not in obj:
        raise ImportFormatError(f"{where}: no {key!r} field")
    return obj[key]


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
