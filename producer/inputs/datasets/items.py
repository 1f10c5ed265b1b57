"""Item construction shared by every loader: whitespace collapsing, id checks, answer de-duplication."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from producer.inputs.datasets.data_errors import DataError


def collapse(text: Any) -> str:
    """Whitespace-collapsed text (CONTRACT section 1)."""
    return " ".join(str(text).split())


def unique_answers(answers: Iterable[Any]) -> list[str]:
    """Collapsed, non-empty answers in first-seen order, without exact duplicates."""
    out: list[str] = []
    seen: set[str] = set()
    for a in answers:
        if a is None:
            continue
        text = collapse(a)
        if text and text not in seen:
            seen.add(text)
            out.append(text)
    return out


def check_item_id(dataset: str, item_id: Any, where: str) -> str:
    """Item ids are non-empty strings without ``|`` (the custom_id separator, CONTRACT section 2)."""
    text = str(item_id).strip() if item_id is not None else ""
    if not text:
        raise DataError(f"{dataset}: {where}: item has no id")
    if "|" in text:
        raise DataError(f"{dataset}: {where}: item id {text!r} contains '|', which custom_ids reserve")
    return text


def question_hash_id(question: str) -> str:
    """NQ-Open has no ids: a stable hash of the collapsed question text."""
    return "nq_" + hashlib.sha256(collapse(question).encode("utf-8")).hexdigest()[:16]


def open_item(dataset: str, item_id: str, context: str, question: str, answers: list[str]) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "id": item_id,
        "context": collapse(context),
        "question": collapse(question),
        "answers": answers,
        "is_unanswerable": not answers,
    }


def closed_item(dataset: str, item_id: str, question: str, answers: list[str]) -> dict[str, Any]:
    return {"dataset": dataset, "id": item_id, "question": collapse(question), "answers": answers}


def reject_duplicate_ids(dataset: str, items: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    seen: set[str] = set()
    for item in items:
        if item["id"] in seen:
            raise DataError(f"{dataset}: {path}: duplicate item id {item['id']!r}")
        seen.add(item["id"])
    return items
