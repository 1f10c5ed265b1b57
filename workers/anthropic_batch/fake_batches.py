"""What the fake Anthropic server does with a message batch: check the create request, answer each
request and write the results file, in the published shapes (Message Batches API reference, and
``anthropic`` SDK types ``MessageBatch``, ``MessageBatchIndividualResponse``, ``Message``, ``Usage``).

- Create: ``{"requests": [{"custom_id", "params"}]}``; 1..100,000 requests; a custom_id outside
  ``^[a-zA-Z0-9_-]{1,64}$`` or used twice refuses the whole create (400 ``invalid_request_error``).
- Params are checked per request only when the batch is processed: a bad one (no ``max_tokens``,
  ``temperature`` outside 0..1, ``top_p`` outside 0..1, a ``system`` role inside ``messages``) comes
  back as an ``errored`` result, ``{"type": "errored", "error": {"type": "error", "error": {"type":
  "invalid_request_error", "message"}}}``, as the service does.
- A result line: ``{"custom_id", "result": {"type": "succeeded", "message": {...}}}`` or ``errored`` /
  ``canceled`` / ``expired`` (no other field); lines come back in any order.
- Prompt caching: a ``system`` text block with ``cache_control`` of at least ``CACHE_MIN_TOKENS``
  (estimated; the model's minimum cacheable length) tokens is written to the cache by the first request that carries it
  (``cache_creation_input_tokens``) and read by the next ones (``cache_read_input_tokens``);
  ``input_tokens`` counts only the rest, as the API reports it.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from typing import Any

from config.token_count import text_estimate

MAX_REQUESTS = 100_000
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
CACHE_MIN_TOKENS = 1024


def new_id(prefix: str) -> str:
    """Ids as the service writes them: ``msgbatch_…``, ``msg_…``, ``req_…``."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def check_create(body: Any) -> str | None:
    """Why the create request is refused (the 400's message), or None."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        return "requests: Field required (a list of 1 to 100000 requests)"
    if len(requests) > MAX_REQUESTS:
        return f"requests: at most {MAX_REQUESTS} requests per batch"
    seen: set[str] = set()
    for i, req in enumerate(requests):
        cid = req.get("custom_id") if isinstance(req, dict) else None
        if not isinstance(cid, str) or not CUSTOM_ID.match(cid):
            return f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        if cid in seen:
            return f"requests.{i}.custom_id: Duplicate custom_id '{cid}': each request in a batch needs a unique custom_id"
        seen.add(cid)
        if not isinstance(req.get("params"), dict):
            return f"requests.{i}.params: Field required"
    return None


def _invalid(params: dict[str, Any]) -> str | None:
    """The per-request validation the service does when it processes the batch."""
    for name in ("model", "max_tokens", "messages"):
        if name not in params:
            return f"{name}: Field required"
    for name, hi in (("temperature", 1.0), ("top_p", 1.0)):
        value = params.get(name)
        if value is not None and not 0.0 <= float(value) <= hi:
            return f"{name}: Input should be less than or equal to {hi:g}"
    if any(m.get("role") not in ("user", "assistant") for m in params["messages"]):
        return "messages: Unexpected role \"system\". The Messages API accepts a top-level `system` parameter"
    return None


def _system_text(params: dict[str, Any]) -> tuple[str, str | None]:
    """(all system text, the text marked for caching or None)."""
    system = params.get("system")
    if isinstance(system, str):
        return system, None
    blocks = system if isinstance(system, list) else []
    text = "".join(str(b.get("text") or "") for b in blocks)
    marked = "".join(str(b.get("text") or "") for b in blocks if b.get("cache_control"))
    return text, marked or None


def answer(params: dict[str, Any]) -> str:
    """A deterministic canned answer (the last word of the question, or 'unknown')."""
    content = (params.get("messages") or [{}])[-1].get("content")
    user = content if isinstance(content, str) else " ".join(str(b.get("text") or "") for b in content or [])
    m = re.search(r"QUESTION:\s*(.+)", user, re.S)
    words = re.findall(r"[A-Za-z0-9]+", m.group(1) if m else user)
    return words[-1] if words else "unknown"


def message(params: dict[str, Any], cache: set[str], cache_min_tokens: int = CACHE_MIN_TOKENS) -> dict[str, Any]:
    """A ``Message`` with ``usage`` as the service reports it; ``cache``: texts already cached."""
    system, marked = _system_text(params)
    prompt = text_estimate(system) + sum(text_estimate(json.dumps(m.get("content"))) for m in params["messages"]) + 7
    write = read = 0
    if marked and text_estimate(marked) >= cache_min_tokens:
        if marked in cache:
            read = text_estimate(marked)
        else:
            write = text_estimate(marked)
            cache.add(marked)
    text = answer(params)
    out = max(1, len(text.split()))
    return {"id": new_id("msg"), "type": "message", "role": "assistant", "model": params["model"],
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": prompt - write - read, "output_tokens": out,
                      "cache_creation_input_tokens": write, "cache_read_input_tokens": read}}


def run_requests(requests: list[dict[str, Any]], *, fail_rows: set[str], reached: int | None,
                 skipped: str, cache_min_tokens: int = CACHE_MIN_TOKENS) -> tuple[bytes, dict[str, int]]:
    """(the results file, request_counts). ``reached``: requests processed before the batch expired or
    was canceled (None: all); the rest are ``skipped`` (``expired`` or ``canceled``)."""
    lines: list[str] = []
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    cache: set[str] = set()
    for i, req in enumerate(requests):
        cid, params = req["custom_id"], req["params"]
        if reached is not None and i >= reached:
            result: dict[str, Any] = {"type": skipped}
        elif (problem := _invalid(params)) is not None or cid in fail_rows:
            kind = "api_error" if problem is None else "invalid_request_error"
            result = {"type": "errored", "error": {"type": "error", "error": {
                "type": kind, "message": problem or "Internal server error"}}}
        else:
            result = {"type": "succeeded", "message": message(params, cache, cache_min_tokens)}
        counts[result["type"]] += 1
        lines.append(json.dumps({"custom_id": cid, "result": result}))
    random.shuffle(lines)  # the service returns results in any order
    return ("\n".join(lines) + "\n").encode("utf-8"), counts
