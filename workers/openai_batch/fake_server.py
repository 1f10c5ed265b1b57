"""An offline stand-in for OpenAI's Files and Batch APIs on 127.0.0.1 (tests and ``--dry-run``).

Why in the package: ``--dry-run`` on the OpenAI backend runs the official SDK, the planner and ingest
against canned answers, with no network and no key. Endpoints, objects and errors follow the API
reference (Files: create, list, retrieve, content; Batch: create, retrieve, list, cancel); the batch's
own life (validation, answers, output and error files) is ``fake_batches``. Errors come as
``{"error": {"message", "type", "param", "code"}}``; a wrong key is 401 ``invalid_api_key`` with a
masked key, as the service answers. Tests script faults (429 with ``Retry-After``, 500, any status),
hold batches ``in_progress``, end them ``expired`` with partial output, and hang an endpoint after it
acted (``hang``: the client is killed while it waits for an answer), and read counts and calls.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from workers.batch.fake_http import SdkFakeServer, match_route
from workers.openai_batch import fake_batches

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
OPEN = ("validating", "in_progress", "finalizing", "cancelling")


@dataclass
class Fault:
    """Answer ``status`` (with ``message``, and ``Retry-After`` when given) to the next ``times`` calls."""

    endpoint: str
    status: int
    times: int = 1
    message: str = "injected fault"
    retry_after: str | None = None


@dataclass
class FakeState:
    api_key: str = "sk-test-key"
    final_status: str = "completed"  # or "expired": the window ends after ``reached`` rows
    reached: int | None = None  # rows processed before an expiry (None: all of them)
    fail_rows: set[str] = field(default_factory=set)  # custom_ids that fail (a 500 line in the error file)
    hold: bool = False  # keep batches in_progress (a test kills the client meanwhile)
    hang: set[str] = field(default_factory=set)  # endpoints that act, then wait for ``release`` to answer
    cached_tokens: int = 2
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # a validated batch's requests
    counts: dict[str, int] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    hung: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.RLock = field(default_factory=threading.RLock)


def _masked(key: str) -> str:
    return f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 8 else "***"


def _page(items: list[dict[str, Any]], query: dict[str, list[str]], default_limit: int) -> dict[str, Any]:
    """A cursor page (``after``, ``limit``), newest first, as the list endpoints return it."""
    after = (query.get("after") or [None])[0]
    limit = max(1, min(int((query.get("limit") or [default_limit])[0]), 10_000))
    ordered = sorted(items, key=lambda o: (o["created_at"], o["id"]), reverse=True)
    if after:
        ids = [o["id"] for o in ordered]
        ordered = ordered[ids.index(after) + 1:] if after in ids else []
    data = ordered[:limit]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": len(ordered) > limit}


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # TCP_NODELAY: a body written after its headers waited ~40 ms (delayed ACK)
    server: FakeOpenAIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, payload: Any = None, raw: bytes | None = None,
              headers: dict[str, str] | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: str | None = None, param: str | None = None,
               kind: str = "invalid_request_error", headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "param": param, "code": code}},
                   headers=headers)

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
        key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if key != st.api_key:
            return self._error(401, f"Incorrect API key provided: {_masked(key)}. You can find your API key at "
                                    "https://platform.openai.com/account/api-keys.", "invalid_api_key")
        if fault:
            kinds = {429: "requests", 500: "server_error", 503: "server_error"}
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return self._error(fault.status, fault.message, kind=kinds.get(fault.status, "invalid_request_error"),
                               headers=extra)
        if endpoint == "unknown":
            return self._error(404, f"Invalid URL ({method} {url.path})")
        getattr(self, f"_h_{endpoint}")(args, parse_qs(url.query), body)

    def _hang(self, endpoint: str) -> None:
        """After acting, wait to answer (the client may be killed meanwhile)."""
        st = self.server.state
        if endpoint in st.hang:
            with st.lock:
                st.hung[endpoint] = st.hung.get(endpoint, 0) + 1
            st.release.wait()

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    # -- files ----------------------------------------------------------------------------------
    def _h_upload_file(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        ctype = self.headers.get("Content-Type") or ""
        if not ctype.startswith("multipart/form-data"):
            return self._error(400, "Expected multipart/form-data")
        msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
        if "file" not in fields:
            return self._error(400, "Missing required parameter: 'file'.", "missing_required_parameter", "file")
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if purpose != "batch":
            return self._error(400, f"'{purpose}' is not one of the accepted purposes for this test server", None,
                               "purpose")
        filename, content = fields["file"]
        if len(content) > 200_000_000:
            return self._error(400, "File too large: the batch input file may be up to 200 MB.", None, "file")
        file_id = fake_batches._id("file", "-")
        obj = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
               "filename": filename or "upload", "purpose": "batch", "status": "processed", "expires_at": None,
               "status_details": None}
        with st.lock:
            st.files[file_id], st.contents[file_id] = obj, content
        self._hang("upload_file")
        self._send(200, obj)

    def _h_list_files(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        purpose = (query.get("purpose") or [None])[0]
        with st.lock:
            items = [f for f in st.files.values() if purpose in (None, f["purpose"])]
        self._send(200, _page(items, query, 10_000))

    def _h_get_file(self, args: dict, query: dict, body: bytes) -> None:
        found = self.server.state.files.get(args["file"])
        if found is None:
            return self._error(404, f"No such File object: {args['file']}", None, "id")
        self._send(200, found)

    def _h_file_content(self, args: dict, query: dict, body: bytes) -> None:
        content = self.server.state.contents.get(args["file"])
        if content is None:
            return self._error(404, f"No such File object: {args['file']}", None, "id")
        self._hang("file_content")
        self._send(200, raw=content)

    # -- batches --------------------------------------------------------------------------------
    def _h_create_batch(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not req.get(name):
                return self._error(400, f"Missing required parameter: '{name}'.", "missing_required_parameter", name)
        if req["endpoint"] not in ENDPOINTS:
            return self._error(400, f"Invalid value: '{req['endpoint']}'.", "invalid_value", "endpoint")
        if req["completion_window"] != "24h":
            return self._error(400, f"Invalid value: '{req['completion_window']}'. Supported values are: '24h'.",
                               "invalid_value", "completion_window")
        meta = req.get("metadata") or {}
        if not isinstance(meta, dict) or len(meta) > 16 or any(
                len(str(k)) > 64 or not isinstance(v, str) or len(v) > 512 for k, v in meta.items()):
            return self._error(400, "metadata: at most 16 pairs, keys up to 64 and string values up to 512 "
                                    "characters.", "invalid_value", "metadata")
        file = st.files.get(req["input_file_id"])
        if file is None or file["purpose"] != "batch":
            return self._error(400, f"Invalid 'input_file_id': '{req['input_file_id']}'.", None, "input_file_id")
        now = int(time.time())
        batch = {"id": fake_batches._id("batch"), "object": "batch", "endpoint": req["endpoint"], "errors": None,
                 "input_file_id": file["id"], "completion_window": "24h", "status": "validating",
                 "output_file_id": None, "error_file_id": None, "created_at": now, "in_progress_at": None,
                 "expires_at": now + 86_400, "finalizing_at": None, "completed_at": None, "failed_at": None,
                 "expired_at": None, "cancelling_at": None, "cancelled_at": None,
                 "request_counts": {"total": 0, "completed": 0, "failed": 0}, "metadata": meta or None}
        with st.lock:
            st.batches[batch["id"]] = batch
            st.counts["batches_created"] = st.counts.get("batches_created", 0) + 1
            out = dict(batch)
        self._hang("create_batch")
        self._send(200, out)

    def _h_get_batch(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        with st.lock:
            batch = st.batches.get(args["batch"])
            if batch is None:
                return self._error(404, f"No batch found with id '{args['batch']}'.", None, "batch_id")
            self.server.advance(batch)
            out = dict(batch)
        self._send(200, out)

    def _h_list_batches(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        with st.lock:
            for batch in st.batches.values():  # the service moves on whichever endpoint looks
                self.server.advance(batch)
            items = [dict(b) for b in st.batches.values()]
        self._send(200, _page(items, query, 20))

    def _h_cancel_batch(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        with st.lock:
            batch = st.batches.get(args["batch"])
            if batch is None:
                return self._error(404, f"No batch found with id '{args['batch']}'.", None, "batch_id")
            if batch["status"] not in ("validating", "in_progress", "finalizing"):
                return self._error(409, f"Cannot cancel a batch with status '{batch['status']}'.")
            batch.update(status="cancelling", cancelling_at=int(time.time()))
            out = dict(batch)
        self._send(200, out)


_ROUTES = [
    ("POST", re.compile(r"/v1/files$"), "upload_file"),
    ("GET", re.compile(r"/v1/files$"), "list_files"),
    ("GET", re.compile(r"/v1/files/(?P<file>[^/]+)/content$"), "file_content"),
    ("GET", re.compile(r"/v1/files/(?P<file>[^/]+)$"), "get_file"),
    ("POST", re.compile(r"/v1/batches$"), "create_batch"),
    ("GET", re.compile(r"/v1/batches$"), "list_batches"),
    ("POST", re.compile(r"/v1/batches/(?P<batch>[^/]+)/cancel$"), "cancel_batch"),
    ("GET", re.compile(r"/v1/batches/(?P<batch>[^/]+)$"), "get_batch"),
]


def _match(method: str, path: str) -> tuple[str, dict[str, str]]:
    return match_route(_ROUTES, method, path)


class FakeOpenAIServer(SdkFakeServer):
    handler = _Handler
    state_class = FakeState
    thread_name = "fake-openai"

    @property
    def base_url(self) -> str:
        """What ``OPENAI_BASE_URL`` is set to (the SDK's base includes ``/v1``)."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def _store(self, lines: list[str]) -> str | None:
        if not lines:
            return None
        content = ("\n".join(lines) + "\n").encode("utf-8")
        file_id = fake_batches._id("file", "-")
        self.state.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content),
                                     "created_at": int(time.time()), "filename": f"{file_id}.jsonl",
                                     "purpose": "batch_output", "status": "processed", "expires_at": None,
                                     "status_details": None}
        self.state.contents[file_id] = content
        return file_id

    def advance(self, batch: dict[str, Any]) -> None:
        """One step of a batch's life per look (caller holds the lock)."""
        st, now, status = self.state, int(time.time()), batch["status"]
        rows = st.rows.get(batch["id"])
        if status == "validating":
            rows, errors = fake_batches.validate_input(st.contents[batch["input_file_id"]], batch["endpoint"])
            if errors:
                batch.update(status="failed", failed_at=now, errors={"object": "list", "data": errors})
            else:
                st.rows[batch["id"]] = rows
                batch.update(status="in_progress", in_progress_at=now, request_counts={"total": len(rows), "completed": 0, "failed": 0})
        elif status == "in_progress" and not st.hold:
            batch.update(status="finalizing", finalizing_at=now)
        elif status in ("finalizing", "cancelling"):
            cancel = status == "cancelling"
            reached = 0 if cancel else (st.reached if st.final_status == "expired" else None)
            code = "batch_cancelled" if cancel else "batch_expired"
            out, err, counts = fake_batches.run_rows(rows or [], fail_rows=st.fail_rows, reached=reached,
                                                     skipped_code=code, cached_tokens=st.cached_tokens)
            final = "cancelled" if cancel else st.final_status
            batch.update(status=final, output_file_id=self._store(out), error_file_id=self._store(err),
                         request_counts=counts, **{f"{final}_at": now})

    def finish(self) -> None:
        """Tests: stop holding; every open batch will end at its next looks."""
        self.state.hold = False


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Offline OpenAI Files and Batch API on 127.0.0.1")
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--key", default="sk-test-key")
    ns = ap.parse_args()
    srv = FakeOpenAIServer(FakeState(api_key=ns.key), ns.port)
    print(f"fake OpenAI on {srv.base_url} (key {ns.key!r})")
    srv.serve_forever()
