"""What the fake OpenAI server does with a batch: validate its input file, answer its requests and
write the output and error files, in the published shapes (platform.openai.com/docs/guides/batch,
API reference: Batch, Files).

- Input line: ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {"model", ...}}``.
  Validation failures end the batch ``failed`` with ``errors: {"object": "list", "data": [{"code",
  "message", "param", "line"}]}`` (``duplicate_custom_id``, ``mismatched_model``, ``invalid_url``,
  ``invalid_json_line``, ``missing_required_parameter``, ``too_many_requests``).
- Output / error line: ``{"id": "batch_req_...", "custom_id", "response": {"status_code", "request_id",
  "body"}, "error": null}``; a request the model refused is a ``status_code`` 400 line in the error file,
  a request the window did not reach (``expired``) or a cancel skipped is ``"response": null,
  "error": {"code": "batch_expired" | "batch_cancelled", "message"}``. Rows come back in any order.
- Reasoning models (o-series, gpt-5) refuse ``temperature`` other than 1, ``top_p`` and ``max_tokens``
  with 400 ``unsupported_parameter`` / ``unsupported_value`` per request.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from typing import Any

MAX_REQUESTS = 50_000  # per batch input file
REASONING = re.compile(r"^(o\d|gpt-5)")


def _id(prefix: str, sep: str = "_") -> str:
    """Ids as the service writes them: ``file-…``, ``batch_…``, ``batch_req_…``, ``req_…``, ``chatcmpl-…``."""
    return f"{prefix}{sep}{uuid.uuid4().hex[:24]}"


def _err(code: str, message: str, line: int | None, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def validate_input(content: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, errors) of an input file; any error fails the whole batch, as the service does."""
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    model = None
    for n, line in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            errors.append(_err("invalid_json_line", "This line is not parseable as valid JSON.", n))
            continue
        cid = row.get("custom_id") if isinstance(row, dict) else None
        body = row.get("body") if isinstance(row, dict) else None
        if not isinstance(cid, str) or not isinstance(body, dict) or row.get("method") != "POST":
            errors.append(_err("missing_required_parameter", "custom_id, method and body are required.", n))
            continue
        if row.get("url") != endpoint:
            errors.append(_err("invalid_url", f"The URL provided for this request does not match the batch "
                                              f"endpoint {endpoint}.", n, "url"))
        if cid in seen:
            errors.append(_err("duplicate_custom_id", "The custom_id for this request is a duplicate of another "
                                                      "request. The custom_id parameter must be unique for each "
                                                      "request in a batch.", n, "custom_id"))
        seen.add(cid)
        if not body.get("model"):
            errors.append(_err("missing_required_parameter", "Missing required parameter: 'body.model'.", n,
                               "body.model"))
        elif model is None:
            model = body["model"]
        elif body["model"] != model:
            errors.append(_err("mismatched_model", "The provided model does not match other requests in this "
                                                   "batch. All requests in a batch must use the same model.", n,
                               "body.model"))
        rows.append(row)
    if len(rows) > MAX_REQUESTS:
        errors.append(_err("too_many_requests", f"The batch input file contains more than {MAX_REQUESTS} "
                                                "requests.", None))
    return rows, errors


def _refusal(body: dict[str, Any]) -> tuple[str, str, str] | None:
    """(code, param, message) when a reasoning model refuses a parameter, as the API does per request."""
    if not REASONING.match(str(body.get("model"))):
        return None
    if "max_tokens" in body:
        return ("unsupported_parameter", "max_tokens", "Unsupported parameter: 'max_tokens' is not supported "
                "with this model. Use 'max_completion_tokens' instead.")
    if body.get("temperature", 1) != 1:
        return ("unsupported_value", "temperature", "Unsupported value: 'temperature' does not support "
                f"{body['temperature']} with this model. Only the default (1) value is supported.")
    if "top_p" in body:
        return ("unsupported_parameter", "top_p", "Unsupported parameter: 'top_p' is not supported with this model.")
    return None


def answer(body: dict[str, Any]) -> str:
    """A deterministic canned answer (the last word of the question, or 'unknown')."""
    user = str((body.get("messages") or [{}])[-1].get("content") or "")
    m = re.search(r"QUESTION:\s*(.+)", user, re.S)
    words = re.findall(r"[A-Za-z0-9]+", m.group(1) if m else user)
    return words[-1] if words else "unknown"


def completion(body: dict[str, Any], cached_tokens: int) -> dict[str, Any]:
    """A ``chat.completion`` object with usage, as the service returns it in ``response.body``."""
    text = answer(body)
    prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages") or []) + 7
    out = max(1, len(text.split()))
    return {"id": _id("chatcmpl", "-"), "object": "chat.completion", "created": 1_700_000_000, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out,
                      "prompt_tokens_details": {"cached_tokens": min(cached_tokens, prompt), "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}},
            "system_fingerprint": "fp_fake"}


def run_rows(rows: list[dict[str, Any]], *, fail_rows: set[str], reached: int | None, skipped_code: str,
             cached_tokens: int) -> tuple[list[str], list[str], dict[str, int]]:
    """(output lines, error lines, request_counts). ``reached``: rows processed before the window ended
    or a cancel (None: all); the rest go to the error file with ``skipped_code``."""
    out: list[str] = []
    err: list[str] = []
    for i, row in enumerate(rows):
        cid, body = row["custom_id"], row["body"]
        line: dict[str, Any] = {"id": _id("batch_req"), "custom_id": cid, "response": None, "error": None}
        if reached is not None and i >= reached:
            words = {"batch_expired": "This request could not be executed before the completion window expired.",
                     "batch_cancelled": "This request was not executed because the batch was cancelled."}
            line["error"] = {"code": skipped_code, "message": words[skipped_code]}
            err.append(json.dumps(line))
            continue
        refused = _refusal(body)
        if cid in fail_rows and refused is None:
            refused = ("server_error", None, "The server had an error processing your request.")
        if refused is not None:
            code, param, message = refused
            status = 500 if code == "server_error" else 400
            line["response"] = {"status_code": status, "request_id": _id("req"),
                                "body": {"error": {"message": message, "type": "invalid_request_error",
                                                   "param": param, "code": code}}}
            err.append(json.dumps(line))
            continue
        line["response"] = {"status_code": 200, "request_id": _id("req"), "body": completion(body, cached_tokens)}
        out.append(json.dumps(line))
    random.shuffle(out)  # the service returns rows in any order
    random.shuffle(err)
    total = len(rows)
    return out, err, {"total": total, "completed": len(out), "failed": len(err)}
