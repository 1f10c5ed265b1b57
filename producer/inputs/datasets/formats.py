"""Loaders for the official formats, as distributed.

- SQuAD v2 JSON: ``data[].paragraphs[].qas[]`` with ``is_impossible`` (also the HF parquet/JSONL export).
- TriviaQA JSON: ``Data[]`` with ``Question``, ``QuestionId``, ``Answer.Value``, ``Answer.Aliases``;
  and the Hugging Face export of ``rc.nocontext`` as JSONL or parquet (``question``, ``question_id``,
  ``answer.value``, ``answer.aliases``).
- NQ-Open JSONL: ``question`` and an ``answer`` list (also parquet from the HF ``nq_open`` export).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from producer.inputs.datasets.data_errors import DataError
from producer.inputs.datasets.items import (
    check_item_id,
    closed_item,
    open_item,
    question_hash_id,
    reject_duplicate_ids,
    unique_answers,
)
from producer.inputs.datasets.readers import iter_jsonl, read_dataset_json, read_parquet_rows


def _suffix(path: Path) -> str:
    return Path(path).suffix.lower()


def _rows(path: Path, dataset: str) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) pairs from a JSONL or parquet file."""
    if _suffix(path) == ".parquet":
        return [(f"row {i}", row) for i, row in enumerate(read_parquet_rows(path, dataset), start=1)]
    return [(f"line {n}", row) for n, row in iter_jsonl(path, dataset)]


def _need(row: dict[str, Any], key: str, dataset: str, path: Path, where: str) -> Any:
    if key not in row or row[key] is None:
        raise DataError(f"{dataset}: {path}: {where}: missing field {key!r}")
    return row[key]


def load_squad_v2(path: Path) -> list[dict[str, Any]]:
    ds = "squad_v2"
    if _suffix(path) in (".jsonl", ".parquet"):
        return reject_duplicate_ids(ds, [_squad_flat_row(row, path, where) for where, row in _rows(path, ds)], path)
    doc = read_dataset_json(path, ds)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f"{ds}: {path}: not a SQuAD v2 file (expected a top-level 'data' list)")
    items = []
    for a, article in enumerate(doc["data"]):
        for p, para in enumerate(article.get("paragraphs", [])):
            context = _need(para, "context", ds, path, f"data[{a}].paragraphs[{p}]")
            for q, qa in enumerate(para.get("qas", [])):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                item_id = check_item_id(ds, _need(qa, "id", ds, path, where), f"{path}: {where}")
                impossible = bool(qa.get("is_impossible", False))
                answers = [] if impossible else unique_answers(x.get("text") for x in qa.get("answers", []))
                items.append(open_item(ds, item_id, context, _need(qa, "question", ds, path, where), answers))
    return reject_duplicate_ids(ds, items, path)


def _squad_flat_row(row: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    """HF ``squad_v2`` export row: id, context, question, answers {text: [...]} (empty = unanswerable)."""
    ds = "squad_v2"
    item_id = check_item_id(ds, _need(row, "id", ds, path, where), f"{path}: {where}")
    answers = row.get("answers") or {}
    texts = answers.get("text", []) if isinstance(answers, dict) else [a.get("text") for a in answers]
    return open_item(
        ds, item_id, _need(row, "context", ds, path, where), _need(row, "question", ds, path, where),
        unique_answers(texts),
    )


def load_triviaqa(path: Path) -> list[dict[str, Any]]:
    ds = "triviaqa"
    if _suffix(path) in (".jsonl", ".parquet"):
        rows = _rows(path, ds)
    else:
        doc = read_dataset_json(path, ds)
        if isinstance(doc, dict) and isinstance(doc.get("Data"), list):
            rows = [(f"Data[{i}]", row) for i, row in enumerate(doc["Data"])]
        elif isinstance(doc, list):
            rows = [(f"[{i}]", row) for i, row in enumerate(doc)]
        else:
            raise DataError(f"{ds}: {path}: not a TriviaQA file (expected a top-level 'Data' list)")
    items = []
    for where, row in rows:
        if not isinstance(row, dict):
            raise DataError(f"{ds}: {path}: {where}: expected an object")
        if "Question" in row:  # official JSON
            q, qid_key, ans_key, value_key, alias_key = "Question", "QuestionId", "Answer", "Value", "Aliases"
        else:  # Hugging Face rc.nocontext export
            q, qid_key, ans_key, value_key, alias_key = "question", "question_id", "answer", "value", "aliases"
        item_id = check_item_id(ds, _need(row, qid_key, ds, path, where), f"{path}: {where}")
        answer = _need(row, ans_key, ds, path, where)
        if not isinstance(answer, dict):
            raise DataError(f"{ds}: {path}: {where}: field {ans_key!r} is not an object")
        answers = unique_answers([answer.get(value_key), *(answer.get(alias_key) or [])])
        items.append(closed_item(ds, item_id, _need(row, q, ds, path, where), answers))
    return reject_duplicate_ids(ds, items, path)


def load_nq_open(path: Path) -> list[dict[str, Any]]:
    """NQ-Open rows; the id is a hash of the question, so a repeated question merges its answers."""
    ds = "nq_open"
    by_id: dict[str, dict[str, Any]] = {}
    for where, row in _rows(path, ds):
        question = _need(row, "question", ds, path, where)
        answer = _need(row, "answer", ds, path, where)
        if isinstance(answer, str):
            answer = [answer]
        if not isinstance(answer, list):
            raise DataError(f"{ds}: {path}: {where}: field 'answer' must be a list of strings")
        item_id = question_hash_id(question)
        if item_id in by_id:
            by_id[item_id]["answers"] = unique_answers([*by_id[item_id]["answers"], *answer])
        else:
            by_id[item_id] = closed_item(ds, item_id, question, unique_answers(answer))
    return list(by_id.values())


LOADERS = {"squad_v2": load_squad_v2, "triviaqa": load_triviaqa, "nq_open": load_nq_open}
