"""An offline stand-in for Fireworks' batch API on 127.0.0.1 (tests and ``--dry-run``).

Why in the package: ``--dry-run`` on the Fireworks backend runs the real client, planner and ingest
against canned answers with no network and no key. It reproduces the documented endpoints and the
quirks seen live: ``exampleCount`` required (400 "example_count is required for uploaded datasets"),
409 on an existing id, job states VALIDATING -> PENDING -> RUNNING -> COMPLETED (or FAILED / EXPIRED
with partial output), a body-less GET ``:getDownloadEndpoint`` returning path-prefixed
``filenameToSignedUrls`` served by this same server, rows out of order, an ``error-data`` file, and
``usage.prompt_tokens_details.cached_tokens``. Like the real API it refuses what the docs do not allow
(``fake_rules``): unknown fields, invalid dataset and job ids, a missing or non-int64 ``exampleCount``
or one that differs from the uploaded rows, files over the 150 MB ``:upload`` limit (413); signed URLs
expire (``url_ttl_s``; then 403 "Request has expired", as a storage host answers). Tests script
faults (429, 500, a 400 with a message, a 403 on a signed URL) and read counts per endpoint, created
jobs and every request body.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from workers.batch.fake_http import match_route
from workers.fireworks import fake_rules

JOB_FLOW = ("JOB_STATE_VALIDATING", "JOB_STATE_PENDING", "JOB_STATE_RUNNING")
_ACCOUNT = r"/v1/accounts/(?P<acct>[^/]+)"


@dataclass
class Fault:
    """Answer ``status`` (with ``message``) to the next ``times`` calls of ``endpoint``."""

    endpoint: str
    status: int
    times: int = 1
    message: str = "injected fault"


@dataclass
class FakeState:
    api_key: str = "test-key"
    final_state: str = "JOB_STATE_COMPLETED"
    fail_rows: set[str] = field(default_factory=set)  # custom_ids written to error-data instead
    fail_index: set[int] = field(default_factory=set)  # or input line numbers (0-based) of each job
    hold_jobs: bool = False  # keep jobs RUNNING (a test kills the client meanwhile)
    hold_state: str | None = None  # or keep them in this state (e.g. JOB_STATE_PENDING: no batch support)
    url_ttl_s: float = 599.0  # signed URLs expire (X-Goog-Expires)
    upload_limit_bytes: int = 150_000_000  # :upload takes files up to 150 MB (docs); more: 413
    file_key_format: str = "dataset/{ds}/{name}"  # keys of filenameToSignedUrls (tests: hostile names)
    cached_tokens: int = 3
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, tuple[bytes, float]] = field(default_factory=dict)  # signed token -> (content, expiry)
    counts: dict[str, int] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    signed_with_auth: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _answer(model: str, body: dict[str, Any]) -> str:
    """A deterministic canned answer (the last word of the question, or 'unknown')."""
    user = body["messages"][-1]["content"]
    m = re.search(r"QUESTION:\s*(.+)", user, re.S)
    words = re.findall(r"[A-Za-z0-9]+", m.group(1) if m else user)
    return words[-1] if words else "unknown"


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # TCP_NODELAY: a body written after its headers waited ~40 ms (delayed ACK)
    server: FakeFireworksServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        return

    # -- helpers ------------------------------------------------------------------------------
    def _send(self, status: int, payload: Any = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        codes = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
                 413: "OUT_OF_RANGE", 429: "RESOURCE_EXHAUSTED"}
        self._send(status, {"code": codes.get(status, "INTERNAL"), "message": message})

    def _storage_error(self, status: int, code: str, message: str) -> None:
        """The signed-URL host answers like a storage service: XML, no JSON."""
        data = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _route(self, method: str) -> None:
        st = self.server.state
        url = urlsplit(self.path)
        body = self._body()
        endpoint, args = _match(method, url.path)
        with st.lock:
            st.counts[endpoint] = st.counts.get(endpoint, 0) + 1
            call = {"method": method, "path": url.path, "endpoint": endpoint,
                    "auth": self.headers.get("Authorization")}
            st.calls.append(call)
            fault = next((f for f in st.faults if f.endpoint == endpoint and f.times > 0), None)
            if fault:
                fault.times -= 1
        if endpoint == "signed":
            if self.headers.get("Authorization"):
                st.signed_with_auth += 1
            found = st.files.get(args["token"])
            if fault:
                return self._storage_error(fault.status, "AccessDenied", fault.message)
            if found is None:
                return self._storage_error(404, "NoSuchKey", "The specified key does not exist.")
            if time.time() > found[1]:
                return self._storage_error(403, "AccessDenied", "Request has expired")
            return self._send(200, raw=found[0])
        if self.headers.get("Authorization") != f"Bearer {st.api_key}":
            return self._send(403, {"error": {"message": "The API key you provided is invalid.",
                                              "code": "UNAUTHORIZED"}})
        if fault:
            return self._error(fault.status, fault.message)
        if endpoint == "unknown":
            return self._error(404, "resource not found")
        for key, what in (("ds", "dataset_id"), ("job", "batch_inference_job_id")):
            problem = fake_rules.bad_id(args[key], what) if key in args else None
            if problem:
                return self._error(400, problem)
        handler = getattr(self, f"_h_{endpoint}")
        handler(args, parse_qs(url.query), body)

    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._route("DELETE")

    # -- endpoints ----------------------------------------------------------------------------
    def _h_create_dataset(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return self._error(400, "invalid JSON payload")
        call_body(st, req)
        problem = fake_rules.check_create_dataset(req)
        if problem:
            return self._error(400, problem)
        ds_id, ds = req["datasetId"], req["dataset"]
        with st.lock:
            if ds_id in st.datasets:
                return self._error(409, f"dataset {ds_id} already exists")
            st.datasets[ds_id] = {"name": f"accounts/{args['acct']}/datasets/{ds_id}", "state": "UPLOADING",
                                  "createTime": _now(), "exampleCount": str(fake_rules.parse_int64(ds["exampleCount"])),
                                  "userUploaded": {}, "rows": []}
            out = {k: v for k, v in st.datasets[ds_id].items() if k != "rows"}
        self._send(200, out)

    def _h_get_dataset(self, args: dict, query: dict, body: bytes) -> None:
        ds = self.server.state.datasets.get(args["ds"])
        if ds is None:
            return self._error(404, "resource not found")
        self._send(200, {k: v for k, v in ds.items() if k != "rows"})

    def _h_upload(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        if len(body) > st.upload_limit_bytes:
            return self._error(413, f"request entity too large: files over {st.upload_limit_bytes} bytes need"
                                    " getUploadEndpoint")
        ds = st.datasets.get(args["ds"])
        if ds is None:
            return self._error(404, "resource not found")
        m = re.search(rb'Content-Disposition: form-data; name="file"[^\r]*\r\n(?:[^\r]+\r\n)*\r\n(.*)\r\n--',
                      body, re.S)
        if m is None:
            return self._error(400, "multipart field 'file' is required")
        content = m.group(1)
        try:
            rows = [json.loads(line) for line in content.decode("utf-8").splitlines() if line.strip()]
        except ValueError:
            return self._error(400, "file is not valid JSONL")
        if len(rows) != int(ds["exampleCount"]):
            return self._error(400, f"the file has {len(rows)} examples but the dataset declares exampleCount"
                                    f" {ds['exampleCount']}")
        with st.lock:
            ds["rows"] = rows
            ds["state"] = "READY"
        self._send(200, {"id": args["ds"], "object": "file", "bytes": len(content), "filename": "part.jsonl"})

    def _h_create_job(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return self._error(400, "invalid JSON payload")
        call_body(st, req)
        given = (query.get("batchInferenceJobId") or [None])[0]
        problem = fake_rules.check_create_job(req, given)
        if problem:
            return self._error(400, problem)
        job_id = given or f"job-{uuid.uuid4().hex[:8]}"
        in_id = req["inputDatasetId"].split("/")[-1]
        if in_id not in st.datasets or st.datasets[in_id]["state"] != "READY":
            return self._error(400, f"input dataset {in_id} is not READY")
        with st.lock:
            if job_id in st.jobs:
                return self._error(409, f"batch inference job {job_id} already exists")
            st.counts["job_creates"] = st.counts.get("job_creates", 0) + 1
            out_name = req.get("outputDatasetId") or f"accounts/{args['acct']}/datasets/{job_id}-output"
            st.jobs[job_id] = {"name": f"accounts/{args['acct']}/batchInferenceJobs/{job_id}", "step": 0,
                               "createTime": _now(), "state": JOB_FLOW[0], "model": req["model"], "inputDatasetId": req["inputDatasetId"],
                               "outputDatasetId": out_name, "inferenceParameters": req.get("inferenceParameters") or {},
                               "status": {"code": "OK", "message": ""}}
            job = _public_job(st, job_id)
        self._send(200, job)

    def _h_get_job(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        with st.lock:
            job = st.jobs.get(args["job"])
            if job is None:
                return self._error(404, "resource not found")
            held = st.hold_state or (JOB_FLOW[-1] if st.hold_jobs else None)
            if job["state"] in JOB_FLOW and job["state"] != held:
                job["step"] += 1
                if job["step"] < len(JOB_FLOW):
                    job["state"] = JOB_FLOW[job["step"]]
                else:
                    _finish(st, args["job"])
            out = _public_job(st, args["job"])
        self._send(200, out)

    def _h_delete_job(self, args: dict, query: dict, body: bytes) -> None:
        """Delete Batch Inference Job: the only call that stops one (the official SDK's
        ``batch_inference_jobs.delete``); a running job ends CANCELLED and stays readable, without output."""
        st = self.server.state
        with st.lock:
            job = st.jobs.get(args["job"])
            if job is None:
                return self._error(404, "resource not found")
            if job["state"] in JOB_FLOW:
                job.update(state="JOB_STATE_CANCELLED", status={"code": "CANCELLED", "message": "cancelled by user"})
        self._send(200, {})

    def _h_download(self, args: dict, query: dict, body: bytes) -> None:
        st = self.server.state
        if body:
            return self._error(400, "GET request with a body is not allowed")
        ds = st.datasets.get(args["ds"])
        if ds is None or "outputs" not in ds:
            return self._error(404, "resource not found")
        host = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        urls = {}
        with st.lock:
            for name, content in ds["outputs"].items():
                token = uuid.uuid4().hex
                st.files[token] = (content, time.time() + st.url_ttl_s)
                key = st.file_key_format.format(ds=args["ds"], name=name)
                urls[key] = f"{host}/signed/{token}?X-Goog-Expires={max(1, int(st.url_ttl_s))}"
        self._send(200, {"filenameToSignedUrls": urls})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() % 1 * 1e6):06d}Z"


def call_body(st: FakeState, req: dict[str, Any]) -> None:
    with st.lock:
        st.calls[-1]["body"] = req


def _public_job(st: FakeState, job_id: str) -> dict[str, Any]:
    job = st.jobs[job_id]
    out = {k: v for k, v in job.items() if k != "step"}
    in_ds = st.datasets.get(job["inputDatasetId"].split("/")[-1], {})
    total = len(in_ds.get("rows", []))
    done = job.get("processed", 0)
    out["jobProgress"] = {"percent": int(100 * done / total) if total else 0, "totalInputRequests": total,
                          "totalProcessedRequests": done, "successfullyProcessedRequests": job.get("ok", 0),
                          "failedRequests": job.get("failed", 0), "outputRows": job.get("ok", 0),
                          "inputTokens": job.get("input_tokens", 0), "outputTokens": job.get("output_tokens", 0),
                          "cachedInputTokenCount": job.get("cached", 0)}
    return out


def _finish(st: FakeState, job_id: str) -> None:
    """Terminal state: write BIJOutputSet.jsonl (shuffled) and error-data into the output dataset."""
    job = st.jobs[job_id]
    job["state"] = st.final_state
    rows = st.datasets[job["inputDatasetId"].split("/")[-1]]["rows"]
    if st.final_state == "JOB_STATE_FAILED":
        job["status"] = {"code": "INVALID_ARGUMENT", "message": "Dataset has a syntax error"}
        return
    if st.final_state == "JOB_STATE_EXPIRED":
        rows = rows[: len(rows) // 2]
    out_lines, err_lines = [], []
    cached = tokens_in = tokens_out = 0
    for i, row in enumerate(rows):
        cid = row["custom_id"]
        if cid in st.fail_rows or i in st.fail_index:
            err_lines.append(json.dumps({"custom_id": cid, "error": {"message": "row failed", "code": 500}}))
            continue
        body = row["body"]
        text = _answer(job["model"], body)
        prompt = sum(len(m["content"].split()) for m in body["messages"])
        completion = len(text.split())
        cached += st.cached_tokens
        tokens_in, tokens_out = tokens_in + prompt, tokens_out + completion
        out_lines.append(json.dumps({"custom_id": cid, "response": {
            "id": f"chatcmpl-{job_id}-{i}", "object": "chat.completion", "model": job["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": st.cached_tokens}}}}))
    random.Random(job_id).shuffle(out_lines)  # rows come back out of order
    job.update(processed=len(rows), ok=len(out_lines), failed=len(err_lines), cached=cached,
               input_tokens=tokens_in, output_tokens=tokens_out)
    out_id = job["outputDatasetId"].split("/")[-1]
    st.datasets[out_id] = {"name": job["outputDatasetId"], "state": "READY", "exampleCount": str(len(out_lines)),
                           "rows": [], "outputs": {
                               "BIJOutputSet.jsonl": ("\n".join(out_lines) + "\n").encode("utf-8"),
                               "error-data": ("\n".join(err_lines) + ("\n" if err_lines else "")).encode("utf-8")}}


_ROUTES = [
    ("POST", re.compile(_ACCOUNT + r"/datasets$"), "create_dataset"),
    ("POST", re.compile(_ACCOUNT + r"/datasets/(?P<ds>[^/:]+):upload$"), "upload"),
    ("GET", re.compile(_ACCOUNT + r"/datasets/(?P<ds>[^/:]+):getDownloadEndpoint$"), "download"),
    ("GET", re.compile(_ACCOUNT + r"/datasets/(?P<ds>[^/:]+)$"), "get_dataset"),
    ("POST", re.compile(_ACCOUNT + r"/batchInferenceJobs$"), "create_job"),
    ("GET", re.compile(_ACCOUNT + r"/batchInferenceJobs/(?P<job>[^/:]+)$"), "get_job"),
    ("DELETE", re.compile(_ACCOUNT + r"/batchInferenceJobs/(?P<job>[^/:]+)$"), "delete_job"),
    ("GET", re.compile(r"/signed/(?P<token>[0-9a-f]+)$"), "signed"),
]


def _match(method: str, path: str) -> tuple[str, dict[str, str]]:
    return match_route(_ROUTES, method, path)


class FakeFireworksServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: FakeState | None = None, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state or FakeState()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> FakeFireworksServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-fireworks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def finish_jobs(self) -> int:
        """Tests: every job still on its way ends now (final_state), as if Fireworks caught up."""
        st = self.state
        with st.lock:
            waiting = [j for j, job in st.jobs.items() if job["state"] in JOB_FLOW]
            for job_id in waiting:
                _finish(st, job_id)
        return len(waiting)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Offline Fireworks batch API on 127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--key", default="test-key")
    ns = ap.parse_args()
    srv = FakeFireworksServer(FakeState(api_key=ns.key), ns.port)
    print(f"fake Fireworks on {srv.base_url} (account any, key {ns.key!r})")
    srv.serve_forever()
