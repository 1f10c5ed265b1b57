"""Raw results rows (CONTRACT section 3) and predictions.csv (CONTRACT section 4).

Why: every backend (in-process llama.cpp, HTTP engines, Fireworks batch output, results fetched by
hand) ends in the same two files; this module is the only writer and reader of both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from config.atomic import write_csv_atomic
from config.contract import PREDICTIONS_COLUMNS, CustomIdError, parse_custom_id


class ResultsFormatError(ValueError):
    """A malformed or duplicate raw results row; the message names the file and line."""


def duplicate_custom_id(source: object, cid: str, where: str, first: str) -> ResultsFormatError:
    """The one message for a repeated custom_id (CONTRACT sections 3-4: one row per custom_id)."""
    return ResultsFormatError(f"{source}: {where}: duplicate custom_id {cid!r} (first at {first}); "
                              "each custom_id must appear once")


def check_unique_custom_ids(ids: Iterable[str], source: object, unit: str = "row") -> None:
    """Raise on the first custom_id seen twice: a repeated row would be counted twice by every
    mean, test and cost downstream. Every reader of raw results or predictions.csv calls this."""
    seen: dict[str, int] = {}
    for n, cid in enumerate(ids, start=1):
        if cid in seen:
            raise duplicate_custom_id(source, cid, f"{unit} {n}", f"{unit} {seen[cid]}")
        seen[cid] = n


def parse_jsonl_bytes(content: bytes, source: str) -> list[dict[str, Any]]:
    """A batch provider's output or error file (JSON Lines, UTF-8) as rows; a broken file is one
    ``ResultsFormatError`` naming ``source`` and the line."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultsFormatError(f"{source}: not UTF-8 text") from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise ResultsFormatError(f"{source}: line {n}: invalid JSON") from None
    return rows


def raw_result_row(
    custom_id: str,
    text: str,
    finish_reason: str | None,
    usage: dict[str, Any] | None,
    request_id: str | None,
    latency_s: float | None = None,
    engine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one raw results row in the contract's shape."""
    usage = dict(usage or {})
    body_usage = {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    if body_usage["total_tokens"] is None and None not in (body_usage["prompt_tokens"], body_usage["completion_tokens"]):
        body_usage["total_tokens"] = body_usage["prompt_tokens"] + body_usage["completion_tokens"]
    if isinstance(usage.get("prompt_tokens_details"), dict):  # cached prompt tokens (Fireworks) for costs
        body_usage["prompt_tokens_details"] = dict(usage["prompt_tokens_details"])
    return {
        "custom_id": custom_id,
        "response": {
            "request_id": request_id,
            "body": {
                "id": request_id,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": body_usage,
            },
        },
        "engine": engine or {},
        "latency_s": latency_s,
    }


def normalise_raw_row(row: dict[str, Any]) -> dict[str, Any]:
    """Accept our shape or a Fireworks output row (``response`` is the chat completion itself)."""
    if not isinstance(row, dict) or "custom_id" not in row:
        raise ResultsFormatError("row has no custom_id")
    response = row.get("response")
    if not isinstance(response, dict):
        raise ResultsFormatError("row has no response object")
    if "body" in response and isinstance(response["body"], dict):
        return row
    # Fireworks / OpenAI batch: response is the chat completion.
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    return raw_result_row(
        custom_id=row["custom_id"],
        text=message.get("content") or choice.get("text") or "",
        finish_reason=choice.get("finish_reason"),
        usage=response.get("usage"),
        request_id=response.get("id"),
        latency_s=row.get("latency_s"),
        engine=row.get("engine") or {"backend": "fireworks"},
    )


def read_raw_results(path: Path) -> Iterator[dict[str, Any]]:
    """Yield normalised rows; malformed JSON, bad or duplicate custom_ids fail with the line number."""
    seen: dict[str, int] = {}
    with Path(path).open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = normalise_raw_row(json.loads(line))
                parse_custom_id(row["custom_id"])
            except json.JSONDecodeError as exc:
                raise ResultsFormatError(f"{path}: line {lineno}: invalid JSON ({exc.msg})") from None
            except (ResultsFormatError, CustomIdError) as exc:
                raise ResultsFormatError(f"{path}: line {lineno}: {exc}") from None
            cid = row["custom_id"]
            if cid in seen:
                raise duplicate_custom_id(path, cid, f"line {lineno}", f"line {seen[cid]}")
            seen[cid] = lineno
            yield row


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def prediction_row(row: dict[str, Any]) -> dict[str, Any]:
    """One predictions.csv row from a normalised raw results row."""
    cid = parse_custom_id(row["custom_id"])
    body = row["response"]["body"]
    choice = (body.get("choices") or [{}])[0]
    usage = body.get("usage") or {}
    prompt = _int_or_none(usage.get("prompt_tokens"))
    completion = _int_or_none(usage.get("completion_tokens"))
    total = _int_or_none(usage.get("total_tokens"))
    if prompt is not None and completion is not None:
        total = prompt + completion
    return {
        "custom_id": str(cid),
        "dataset": cid.dataset,
        "item_id": cid.item_id,
        "condition": cid.condition,
        "temp": cid.temp,
        "sample_index": cid.sample_index,
        "type": cid.type,
        "request_id": row["response"].get("request_id") or body.get("id") or "",
        "finish_reason": choice.get("finish_reason") or "",
        "response_text": ((choice.get("message") or {}).get("content") or "").strip(),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
    }


def write_predictions_csv(rows: Iterable[dict[str, Any]], path: Path) -> int:
    """Write predictions.csv atomically, sorted by custom_id; returns the row count."""
    preds = sorted((prediction_row(r) for r in rows), key=lambda p: p["custom_id"])
    check_unique_custom_ids((p["custom_id"] for p in preds), "results", unit="result")
    write_csv_atomic(path, PREDICTIONS_COLUMNS, preds)
    return len(preds)
