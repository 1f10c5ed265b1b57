"""Transcripts: every sample of every item with both conditions' answers and scores, side by side
(CONTRACT section 10: ``transcripts.jsonl`` and ``contexts.jsonl``).

Why here: "on which questions, and what did the model say?" needs predictions, scores and items joined;
this module does the join from plain rows (the export step reads them from the ledger) and scores each
response with ``scoring.rules``, the same rules per_item_scores.csv averages, so the two never disagree.
A passage is stored once in ``contexts.jsonl``; an open-book line's ``user_message`` has it cut out at
``user_message_context_at`` (``full_user_message`` puts it back, byte for byte).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from itertools import groupby
from pathlib import Path
from typing import Any

from config.contract import CONDITIONS, parse_custom_id
from config.schema import Unsupported
from scoring.rules import item_parts, score_parts

SCORE_KEYS = ("em", "f1", "abstained", "false_answer", "unsupported", "contains_answer")  # scoring.rules.score_parts keys
SIDE_KEYS = ("custom_id", "response", "finish_reason", "prompt_tokens", "completion_tokens", "latency_s",
             "request_id", *SCORE_KEYS)


def context_id(text: str) -> str:
    """A passage's stable id: the first 16 hex digits of the sha256 of its UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def context_rows(items: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """``{"context_id", "context"}`` once per distinct passage, in the items' order."""
    seen: dict[str, str] = {}
    for item in items:
        text = item.get("context")
        if text:
            seen.setdefault(context_id(str(text)), str(text))
    return [{"context_id": cid, "context": text} for cid, text in seen.items()]


def _user_message(body: Any) -> str | None:
    messages = (json.loads(body) if isinstance(body, str) else body or {}).get("messages") or []
    return next((m.get("content") for m in messages if m.get("role") == "user"), None)


def _side(row: Mapping[str, Any], parts: tuple[Any, ...] | None, type_: str, unsupported: Unsupported,
          memo: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any] | None:
    """One condition's answer and its scores (None without the item's golds); None without a result."""
    if row.get("text") is None:
        return None
    response = str(row["text"]).strip()  # as predictions.csv's response_text (CONTRACT section 4)
    key = (type_, response)
    if key not in memo:
        memo[key] = (score_parts(*parts, response, type_, unsupported) if parts is not None
                     else dict.fromkeys(SCORE_KEYS))
    return {"custom_id": row["custom_id"], "response": response, "finish_reason": row.get("finish_reason"),
            "prompt_tokens": row.get("prompt_tokens"), "completion_tokens": row.get("completion_tokens"),
            "latency_s": row.get("latency_s"), "request_id": row.get("request_id"), **memo[key]}


def _item_lines(key: str, rows: list[Mapping[str, Any]], item: Mapping[str, Any] | None,
                system_files: Mapping[str, str | None], unsupported: Unsupported) -> Iterator[dict[str, Any]]:
    """The lines of one item: one per (temp, sample), both conditions in each. ``item`` None (not in the
    prepared items): question, answers and scores are null; the responses are still there."""
    parts = item_parts(dict(item)) if item is not None else None
    item = item or {}
    memo: dict[tuple[str, str], dict[str, Any]] = {}
    cells: dict[tuple[float, str, int, str], dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        cid = parse_custom_id(row["custom_id"])
        cells.setdefault((float(cid.temp), cid.temp, cid.sample_index, cid.type), {})[cid.condition] = row
    context = str(item.get("context") or "")
    for (_, temp, sample, type_), by_cond in sorted(cells.items()):
        first = by_cond.get("control") or by_cond["treatment"]
        message = _user_message(first.get("body"))
        at = message.find(context) if (message is not None and type_ == "open" and context) else -1
        if at >= 0:
            message = message[:at] + message[at + len(context):]
        dataset, item_id = key.split("|", 1)
        yield {
            "dataset": dataset, "item_id": item_id, "item_key": key, "type": type_, "temp": temp,
            "sample_index": sample, "question": item.get("question"),
            "answers": list(item["answers"]) if item.get("answers") is not None else None,
            "is_unanswerable": parts[1] if type_ == "open" and parts is not None else None,
            "context_id": context_id(context) if type_ == "open" and context else None,
            "user_message": message, "user_message_context_at": at if at >= 0 else None,
            "system_prompts": {c: {"file": system_files.get(c), "sha256": (by_cond.get(c) or {}).get("system_sha")}
                               for c in CONDITIONS},
            **{c: (_side(by_cond[c], parts, type_, unsupported, memo) if c in by_cond else None)
               for c in CONDITIONS},
        }


def build_transcripts(rows: Iterable[Mapping[str, Any]], items: Mapping[str, Mapping[str, Any]],
                      system_files: Mapping[str, str | None], unsupported: Unsupported | None = None
                      ) -> Iterator[dict[str, Any]]:
    """Transcript lines from request rows in custom_id order (all rows of an item are then consecutive).

    A row: ``custom_id``, ``body`` (the request body, JSON text or dict), ``system_sha`` and, when the
    request has a result, ``text``, ``finish_reason``, ``prompt_tokens``, ``completion_tokens``,
    ``latency_s``, ``request_id`` (``text`` None: no result). ``items``: item_key -> prepared item
    (``scoring.aggregate.items_by_key``);
    ``system_files``: condition -> its system prompt file. Streams: one item in memory at a time."""
    unsupported = unsupported or Unsupported()
    done: set[str] = set()
    for key, group in groupby(rows, key=lambda r: parse_custom_id(r["custom_id"]).item_key):
        if key in done:
            raise ValueError(f"transcript rows of item {key!r} are not consecutive (sort them by custom_id)")
        done.add(key)
        yield from _item_lines(key, list(group), items.get(key), system_files, unsupported)


def full_user_message(line: Mapping[str, Any], contexts: Mapping[str, str]) -> str | None:
    """The exact user message sent: the passage put back where it was cut out."""
    message, at = line.get("user_message"), line.get("user_message_context_at")
    if message is None or at is None:
        return message
    return message[:at] + contexts[line["context_id"]] + message[at:]


def read_contexts(path: Path) -> dict[str, str]:
    """contexts.jsonl as {context_id: context}; {} when the file does not exist."""
    if not Path(path).is_file():
        return {}
    with Path(path).open("r", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return {r["context_id"]: r["context"] for r in rows}


def read_transcripts(path: Path, keys: Iterable[str] | None = None, mentions: str | None = None
                     ) -> Iterator[dict[str, Any]]:
    """Lines of transcripts.jsonl (only those of the item_keys in ``keys`` when given). ``mentions``: skip,
    unparsed, every line whose text does not contain that string (a fast pre-filter on a large file)."""
    wanted = set(keys) if keys is not None else None
    needle = json.dumps(mentions, ensure_ascii=False)[1:-1] if mentions is not None else None
    with Path(path).open("r", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip() or (needle is not None and needle not in line):
                continue
            row = json.loads(line)
            if wanted is None or row.get("item_key") in wanted:
                yield row

