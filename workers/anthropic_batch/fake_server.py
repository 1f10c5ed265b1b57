"""An offline stand-in for Anthropic's Message Batches API on 127.0.0.1 (tests and ``--dry-run``).

Why in the package: ``--dry-run`` on the Anthropic backend runs the official SDK, the planner and ingest
against canned answers, with no network and no key. Endpoints and objects follow the API reference
(create, retrieve, list with ``before_id`` / ``after_id`` / ``limit`` and ``has_more`` / ``first_id`` /
``last_id``, cancel, results at the batch's ``results_url``); a batch's own life (its requests answered,
its results file) is ``fake_batches``. Every answer carries a ``request-id`` header; errors come as
``{"type": "error", "error": {"type", "message"}}``: a wrong key (``x-api-key``, or ``Authorization:
Bearer`` as the SDK sends it) is 401
``authentication_error``, an unknown batch 404 ``not_found_error``. Tests script faults (429
``rate_limit_error`` with ``retry-after``, 500 ``api_error``, 529 ``overloaded_error``, any status),
hold batches ``in_progress``, end them with ``expired`` requests, cancel them (``canceling``, then
``ended`` with ``canceled`` requests), hang an endpoint after it acted (``hang``: the client is killed
while it waits for its answer) or before it acts (``stall``: killed before the service did anything),
and read counts and calls.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from workers.anthropic_batch import fake_batches
from workers.batch.fake_http import SdkFakeServer, match_route

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}


@dataclass
class Fault:
    """Answer ``status`` (with ``message``, and ``retry-after`` when given) to the next ``times`` calls."""

    endpoint: str
    status: int
    times: int = 1
    message: str = "injected fault"
    retry_after: str | None = None


@dataclass
class FakeState:
    api_key: str = "sk-ant-test-key"
    expire_after: int | None = None  # requests processed before a batch expires (None: it never does)
    fail_rows: set[str] = field(default_factory=set)  # custom_ids that come back errored (api_error)
    hold: bool = False  # keep batches in_progress (a test kills the client meanwhile)
    hang: set[str] = field(default_factory=set)  # endpoints that act, then wait for ``release`` to answer
    stall: set[str] = field(default_factory=set)  # endpoints that wait for ``release`` first, then refuse (529)
    cache_min_tokens: int = fake_batches.CACHE_MIN_TOKENS  # the model's minimum cacheable length
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # each batch's requests
    results: dict[str, bytes] = field(default_factory=dict)  # an ended batch's results file
    counts: dict[str, int] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    hung: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.RLock = field(default_factory=threading.RLock)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _page(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    """A page of batches, newest first (``after_id``: older than it; ``before_id``: newer than it)."""
    limit = max(1, min(int((query.get("limit") or ["20"])[0]), 1000))
    ordered = sorted(items, key=lambda b: (b["created_at"], b["id"]), reverse=True)
    ids = [b["id"] for b in ordered]
    after, before = (query.get("after_id") or [None])[0], (query.get("before_id") or [None])[0]
    if after:
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
        data = ordered[:limit]
    elif before:
        ordered = ordered[:ids.index(before)] if before in ids else []
        data = ordered[-limit:]
    else:
        data = ordered[:limit]
    return {"data": data, "has_more": len(ordered) > len(data), "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # TCP_NODELAY: a body written after its headers waited ~40 ms (delayed ACK)
    server: FakeAnthropicServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, payload: Any = None, raw: bytes | None = None,
              headers: dict[str, str] | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/binary")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", fake_batches.new_id("req"))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        self._send(status, {"type": "error", "error": {"type": kind, "message": message}}, headers=headers)

    def _route(self, method: str) -> None:
        st = self.server.state
        url = urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        endpoint, args = _match(method, url.path)
        with st.lock:
            st.counts[endpoint] = st.counts.get(endpoint, 0) + 1
            st.calls.append({"method": method, "path": url.path, "endpoint": endpoint})
            fault = next((f for f in st.faults if f.endpoint == endpoint and f.times > 0), None)
            if fault:
                fault.times -= 1
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ")  # the SDK sends the key so
        if st.api_key not in (self.headers.get("x-api-key"), bearer):  # the API reference: x-api-key
            return self._error(401, "invalid x-api-key")
        if fault:
            extra = {"retry-after": fault.retry_after} if fault.retry_after else None
            return self._error(fault.status, fault.message, headers=extra)
        if endpoint == "unknown":
            return self._error(404, f"Not found: {method} {url.path}")
        if endpoint in st.stall:  # the client is killed before the service did anything
            self._wait(endpoint)
            return self._error(529, "Overloaded")
        getattr(self, f"_h_{endpoint}")(args, parse_qs(url.query), body)

    def _wait(self, endpoint: str) -> None:
        st = self.server.state
        with st.lock:
            st.hung[endpoint] = st.hung.get(endpoint, 0) + 1
        st.release.wait()

    def _hang(self, endpoint: str) -> None:
        """After acting, wait to answer (the client may be killed meanwhile)."""
        if endpoint in self.server.state.hang:
            self._wait(endpoint)

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def _batch(self, batch_id: str) -> dict[str, Any] | None:
        batch = self.server.state.batches.get(batch_id)
        if batch is None:
            self._error(404, f"message_batch_id: No message batch found with id '{batch_id}'")
        return batch

    def _h_create_batch(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return self._error(400, "There was an issue with your request body: not valid JSON")
        problem = fake_batches.check_create(req)
        if problem:
            return self._error(400, problem)
        now = time.time()
        batch_id = fake_batches.new_id("msgbatch")
        batch = {"id": batch_id, "type": "message_batch", "processing_status": "in_progress",
                 "request_counts": {"processing": len(req["requests"]), "succeeded": 0, "errored": 0,
                                    "canceled": 0, "expired": 0},
                 "ended_at": None, "created_at": rfc3339(now), "expires_at": rfc3339(now + 86_400),
                 "archived_at": None, "cancel_initiated_at": None, "results_url": None}
        with st.lock:
            st.batches[batch_id], st.requests[batch_id] = batch, req["requests"]
            st.counts["batches_created"] = st.counts.get("batches_created", 0) + 1
            out = dict(batch)
        self._hang("create_batch")
        self._send(200, out)

    def _h_get_batch(self, args: dict, query: dict, body: bytes) -> None:
        with self.server.state.lock:
            batch = self._batch(args["batch"])
            if batch is None:
                return None
            self.server.advance(batch)
            out = dict(batch)
        self._send(200, out)

    def _h_list_batches(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        with st.lock:
            items = [dict(b) for b in st.batches.values()]
        self._send(200, _page(items, query))

    def _h_cancel_batch(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        with st.lock:
            batch = self._batch(args["batch"])
            if batch is None:
                return None
            if batch["processing_status"] == "in_progress":
                batch.update(processing_status="canceling", cancel_initiated_at=rfc3339(time.time()))
            out = dict(batch)
        self._send(200, out)

    def _h_results(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        with st.lock:
            batch = self._batch(args["batch"])
            if batch is None:
                return None
            content = st.results.get(batch["id"])
        if content is None:
            return self._error(400, f"Message batch {batch['id']} is still {batch['processing_status']}: results "
                                    "are available once processing ends")
        self._hang("results")
        self._send(200, raw=content)


_ROUTES = [
    ("POST", re.compile(r"/v1/messages/batches$"), "create_batch"),
    ("GET", re.compile(r"/v1/messages/batches$"), "list_batches"),
    ("POST", re.compile(r"/v1/messages/batches/(?P<batch>[^/]+)/cancel$"), "cancel_batch"),
    ("GET", re.compile(r"/v1/messages/batches/(?P<batch>[^/]+)/results$"), "results"),
    ("GET", re.compile(r"/v1/messages/batches/(?P<batch>[^/]+)$"), "get_batch"),
]


def _match(method: str, path: str) -> tuple[str, dict[str, str]]:
    return match_route(_ROUTES, method, path)


class FakeAnthropicServer(SdkFakeServer):
    handler = _Handler
    state_class = FakeState
    thread_name = "fake-anthropic"

    @property
    def base_url(self) -> str:
        """What ``ANTHROPIC_BASE_URL`` is set to (the SDK adds ``/v1/...`` itself)."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def advance(self, batch: dict[str, Any]) -> None:
        """One step of a batch's life per look (caller holds the lock): in_progress or canceling -> ended."""
        st, status = self.state, batch["processing_status"]
        if status == "ended" or (status == "in_progress" and st.hold):
            return
        cancel = status == "canceling"
        reached = 0 if cancel else st.expire_after
        content, counts = fake_batches.run_requests(st.requests[batch["id"]], fail_rows=st.fail_rows,
                                                    reached=reached, skipped="canceled" if cancel else "expired",
                                                    cache_min_tokens=st.cache_min_tokens)
        st.results[batch["id"]] = content
        batch.update(processing_status="ended", request_counts=counts, ended_at=rfc3339(time.time()),
                     results_url=f"{self.base_url}/v1/messages/batches/{batch['id']}/results")

    def finish(self) -> None:
        """Tests: stop holding; every open batch ends at its next look."""
        self.state.hold = False


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Offline Anthropic Message Batches API on 127.0.0.1")
    ap.add_argument("--port", type=int, default=8767)
    ap.add_argument("--key", default="sk-ant-test-key")
    ns = ap.parse_args()
    srv = FakeAnthropicServer(FakeState(api_key=ns.key), ns.port)
    print(f"fake Anthropic on {srv.base_url} (key {ns.key!r})")
    srv.serve_forever()
