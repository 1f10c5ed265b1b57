"""The generic question-answer JSONL of a user's own dataset (``custom_datasets`` in the config).

One object per line: ``{"id", "question", "answers": [...], "context"?: str, "unanswerable"?: bool,
"meta"?: {key: label}}`` (``meta``: free-form labels for ``stats.subgroups``).
Why strict: a typo in a field name would otherwise change what is scored without a word; every bad row
is one line naming the dataset, the file and the line, and nothing is prepared until the file is clean.
Items come out in the shape of the built-in ones (CONTRACT section 1), so scoring cannot tell them apart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from producer.inputs.datasets.data_errors import DataError
from producer.inputs.datasets.items import check_item_id, closed_item, collapse, open_item, unique_answers
from producer.inputs.datasets.readers import iter_jsonl

FIELDS = ("id", "question", "answers", "context", "unanswerable", "meta", "type")
META_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,47}")  # ``stats.subgroups`` names it as meta.<key>


MAX_REPORTED = 20  # bad rows named in the one error (the count says how many more)


def load_custom(name: str, path: Path, book: str) -> list[dict[str, Any]]:
    """Every row of ``path`` as a prepared item of ``book`` (``open_book`` or ``closed_book``), file order.
    Every bad row is found in one pass (issue 29): the error names them all, up to MAX_REPORTED."""
    items: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    errors: list[DataError] = []
    for lineno, row in iter_jsonl(path, name, errors):
        where = f"{name}: {path}: line {lineno}"
        try:
            item = _item(name, row, book, where)
        except DataError as exc:
            errors.append(exc)
            continue
        if item["id"] in first_line:
            errors.append(DataError(f"{where}: duplicate id {item['id']!r} (first on line {first_line[item['id']]})"))
            continue
        first_line[item["id"]] = lineno
        items.append(item)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        prefix = f"{name}: {path}: "
        named = "; ".join(str(e).removeprefix(prefix) for e in errors[:MAX_REPORTED])
        more = f"; and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        raise DataError(f"{prefix}{len(errors)} bad rows: {named}{more}")
    return items


def _text(row: dict[str, Any], key: str, where: str) -> str:
    """A required, non-empty string field."""
    if key not in row or row[key] is None:
        raise DataError(f"{where}: missing field {key!r}")
    value = row[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    if not collapse(value):
        raise DataError(f"{where}: field {key!r} is empty")
    return value


def _answers(row: dict[str, Any], where: str) -> list[str]:
    if "answers" not in row:
        raise DataError(f"{where}: missing field 'answers' (a list of strings; [] for an unanswerable question)")
    answers = row["answers"]
    if not isinstance(answers, list):
        raise DataError(f"{where}: field 'answers' must be a list of strings, got {type(answers).__name__}")
    for i, answer in enumerate(answers):
        if not isinstance(answer, str):
            raise DataError(f"{where}: answers[{i}] must be a string, got {type(answer).__name__}")
    return unique_answers(answers)


def _meta(row: dict[str, Any], where: str) -> dict[str, str] | None:
    """The row's ``meta`` labels as text (``{"year": 2020}`` -> ``"2020"``), None when absent."""
    meta = row.get("meta")
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise DataError(f"{where}: field 'meta' must be an object of labels, e.g. {{\"category\": \"geo\"}}")
    out = {}
    for key, value in meta.items():
        if not META_KEY.fullmatch(key):
            raise DataError(f"{where}: meta key {key!r} must start with a letter and hold only letters, digits, "
                            "_ and - (at most 48)")
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[key] = str(value)
        else:
            raise DataError(f"{where}: meta.{key} must be a string, number or true/false, got {type(value).__name__}")
    return out


def _row_book(row: dict[str, Any], book: str, where: str) -> str:
    """The row's book: a ``mixed`` dataset's row says it (``"type": "open_book"``); others may not."""
    if book != "mixed":
        if "type" in row:
            raise DataError(f"{where}: 'type' on a row is for a dataset declared type: mixed (this one is {book})")
        return book
    kind = row.get("type")
    if kind not in ("open_book", "closed_book"):
        got = "missing" if kind is None else repr(kind)
        raise DataError(f"{where}: field 'type' must be open_book or closed_book in a mixed dataset, got {got}")
    return kind


def _item(name: str, row: dict[str, Any], book: str, where: str) -> dict[str, Any]:
    row_book = _row_book(row, book, where)
    item = _plain_item(name, row, row_book, where)
    if book == "mixed":  # the prepared item says its type (CONTRACT section 1)
        item["type"] = "open" if row_book == "open_book" else "closed"
    meta = _meta(row, where)
    return item if meta is None else {**item, "meta": meta}


def _plain_item(name: str, row: dict[str, Any], book: str, where: str) -> dict[str, Any]:
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise DataError(f"{where}: unknown field {unknown[0]!r} (the fields are {', '.join(FIELDS)})")
    raw_id = row.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        got = "missing" if raw_id is None else f"a {type(raw_id).__name__}"
        raise DataError(f"{where}: field 'id' must be a string, got {got}")
    item_id = check_item_id(name, raw_id, where.removeprefix(f"{name}: "))
    question = _text(row, "question", where)
    answers = _answers(row, where)
    unanswerable = row.get("unanswerable", False)
    if not isinstance(unanswerable, bool):
        raise DataError(f"{where}: field 'unanswerable' must be true or false, got {unanswerable!r}")
    if book == "closed_book":
        if unanswerable:
            raise DataError(f"{where}: 'unanswerable' is only for open_book datasets ({name} is closed_book: "
                            "a closed-book question needs a gold answer)")
        if not answers:
            raise DataError(f"{where}: no answer: a closed_book question needs at least one non-empty answer")
        return closed_item(name, item_id, question, answers)  # a context, if any, is not shown closed-book
    context = _text(row, "context", where)
    if unanswerable and answers:
        raise DataError(f"{where}: marked unanswerable but has answers: give 'answers': [] or drop 'unanswerable'")
    if not unanswerable and not answers:
        raise DataError(f"{where}: no answer: give at least one non-empty answer, or mark the question "
                        "'unanswerable': true")
    return open_item(name, item_id, context, question, answers)
