"""A small Fireworks REST client for batch inference (requests, retries, secrets kept out of errors).

Endpoints and field names follow Fireworks' API reference (docs.fireworks.ai/api-reference:
create-dataset, upload-dataset-files, get-dataset, create-batch-inference-job,
get-batch-inference-job, get-dataset-download-endpoint) and the live notes that the docs omit:

- ``POST /v1/accounts/{a}/datasets`` with ``{"datasetId", "dataset": {"exampleCount": "<n>",
  "userUploaded": {}}}``; without ``exampleCount`` the server answers 400
  "example_count is required for uploaded datasets". ``exampleCount`` is an int64 sent as a string.
- ``POST .../datasets/{id}:upload`` (multipart field ``file``) takes files up to 150 MB; bigger
  files need ``:getUploadEndpoint`` + ``:validateUpload``, which we avoid by splitting parts.
- ``POST /v1/accounts/{a}/batchInferenceJobs?batchInferenceJobId=<id>`` with ``model``,
  ``inputDatasetId``, ``outputDatasetId`` (resource names ``accounts/{a}/datasets/{id}``) and
  ``inferenceParameters`` {maxTokens, temperature, topP, topK, n, extraBody}.
- Job ``state`` is ``JOB_STATE_*``; progress is ``jobProgress`` {totalInputRequests,
  totalProcessedRequests, successfullyProcessedRequests, failedRequests, outputRows, inputTokens,
  outputTokens, cachedInputTokenCount}.
- ``GET .../datasets/{id}:getDownloadEndpoint`` must be a body-less GET (a body is rejected with 400,
  POST with 405); it returns ``filenameToSignedUrls`` (keys may be path-prefixed), short-lived signed
  URLs for ``BIJOutputSet.jsonl`` and ``error-data``. Signed URLs are fetched WITHOUT our
  Authorization header: the key must never go to a third-party host.

Retries: connection errors, 408, 429 and 5xx back off exponentially until ``deadline_s``; any other
4xx fails at once with the server's own message. The API key never appears in a repr, log or error,
and only travels over https: ``FIREWORKS_API_BASE`` may use http:// for a loopback host alone
(127.0.0.0/8, ::1, localhost: the test server), so a stray ``.env`` cannot send it in clear.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from producer.env import get_setting, setting_source

log = logging.getLogger("workers.fireworks")

DEFAULT_API_BASE = "https://api.fireworks.ai"
UPLOAD_LIMIT_BYTES = 150_000_000  # :upload accepts files up to 150 MB (docs: upload-dataset-files)
RETRY_STATUS = {408, 429}
MAX_BACKOFF_S = 60.0

TERMINAL_OK = {"JOB_STATE_COMPLETED"}
TERMINAL_PARTIAL = {"JOB_STATE_EXPIRED", "JOB_STATE_EARLY_STOPPED"}  # keep partial output (docs)
TERMINAL_FAILED = {"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_DELETING",
                   "JOB_STATE_DELETING_CLEANING_UP", "JOB_STATE_DELETED", "JOB_STATE_ARCHIVED"}
TERMINAL_STATES = TERMINAL_OK | TERMINAL_PARTIAL | TERMINAL_FAILED


class FireworksError(RuntimeError):
    """A Fireworks call that failed for good; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FireworksConfigError(FireworksError):
    """Missing key or account: the user must set FIREWORKS_API_KEY / FIREWORKS_ACCOUNT_ID."""


class _Secret:
    """Holds the key; its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``: a connection that never leaves this machine."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_base(base: str, source: str | None = None) -> str:
    """The API base without a trailing slash; FireworksConfigError (one line) unless it is https://,
    or http:// to a loopback host. The message shows scheme, host and port only."""
    where = f" (from {source})" if source else ""
    raw = base.strip().rstrip("/")
    try:
        parts = urlsplit(raw)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        raise FireworksConfigError(f"FIREWORKS_API_BASE{where} is not a valid URL") from None
    scheme = parts.scheme.lower()
    shown = f"{scheme}://{host}" + (f":{port}" if port else "")
    if scheme not in ("https", "http") or not host:
        raise FireworksConfigError(f"FIREWORKS_API_BASE{where} must be an https:// URL such as {DEFAULT_API_BASE}")
    if parts.username or parts.password:
        raise FireworksConfigError(f"FIREWORKS_API_BASE{where} must not contain a user name or password")
    if scheme == "http" and not is_loopback_host(host):
        raise FireworksConfigError(
            f"FIREWORKS_API_BASE{where} is {shown}: it must use https:// (http:// only to a loopback host such as"
            " 127.0.0.1), or the API key would travel in clear")
    return raw


def api_base_notice(env_file: str | None = None) -> tuple[str, str | None] | None:
    """For ``doctor`` and ``plan``: (line, error) when FIREWORKS_API_BASE is set to something other than
    the default, else None. ``error`` is the one-line refusal when the base would be refused."""
    base = get_setting("FIREWORKS_API_BASE", env_file=env_file)
    if not base or base.strip().rstrip("/") == DEFAULT_API_BASE:
        return None
    source = setting_source("FIREWORKS_API_BASE", env_file)
    try:
        shown = check_api_base(base, source)
    except FireworksConfigError as exc:
        return f"Fireworks API base from {source} is not the default {DEFAULT_API_BASE}", str(exc)
    return f"Fireworks API base: {shown} (from {source}; the default is {DEFAULT_API_BASE})", None


@dataclass(frozen=True)
class Credentials:
    api_key: _Secret
    account: str
    api_base: str = DEFAULT_API_BASE

    def __post_init__(self) -> None:  # every client, however built, talks https (or to loopback)
        object.__setattr__(self, "api_base", check_api_base(self.api_base))

    @classmethod
    def from_env(cls, env_file: str | None = None) -> Credentials:
        """FIREWORKS_API_KEY, FIREWORKS_ACCOUNT_ID, optional FIREWORKS_API_BASE (environment, then .env)."""
        key = get_setting("FIREWORKS_API_KEY", env_file=env_file)
        account = get_setting("FIREWORKS_ACCOUNT_ID", env_file=env_file)
        if not key:
            raise FireworksConfigError("FIREWORKS_API_KEY is not set (environment or .env)")
        if not account:
            raise FireworksConfigError("FIREWORKS_ACCOUNT_ID is not set (environment or .env)")
        base = get_setting("FIREWORKS_API_BASE", env_file=env_file) or DEFAULT_API_BASE
        base = check_api_base(base, setting_source("FIREWORKS_API_BASE", env_file))  # before any key is sent
        return cls(_Secret(key), account, base)


def redact(text: str, secret: str | None) -> str:
    """Remove the key from any text that may reach a log, file or error message."""
    text = str(text)
    if secret and len(secret) >= 4:
        text = text.replace(secret, "<redacted>")
    return text


def _server_message(resp: requests.Response) -> str:
    """Fireworks errors come as ``{"code","message"}`` or ``{"error": {"message"}}``."""
    try:
        data = resp.json()
    except ValueError:
        return " ".join(resp.text.split())[:500] or resp.reason or ""
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if data.get("message"):
            return str(data["message"])
    return " ".join(str(data).split())[:500]


class FireworksClient:
    """One account's datasets and batch inference jobs."""

    def __init__(self, creds: Credentials, deadline_s: float = 600.0, backoff_s: float = 1.0,
                 timeout_s: float = 120.0, session: requests.Session | None = None) -> None:
        self.creds = creds
        self.deadline_s = deadline_s
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.session = session or requests.Session()

    def __repr__(self) -> str:
        return f"FireworksClient(account={self.creds.account!r}, api_base={self.creds.api_base!r})"

    # -- plumbing -------------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.creds.api_base}/v1/accounts/{self.creds.account}/{path}"

    def dataset_name(self, dataset_id: str) -> str:
        return f"accounts/{self.creds.account}/datasets/{dataset_id}"

    def _clean(self, text: str) -> str:
        return redact(text, self.creds.api_key.reveal())

    def request(self, method: str, url: str, *, auth: bool = True, ok_404: bool = False,
                **kwargs: Any) -> requests.Response | None:
        """One call with retries on connection errors, 408, 429 and 5xx until the deadline.

        Returns None for a 404 when ``ok_404`` (a look-up that found nothing); raises FireworksError
        with the server's message for any other non-retryable status.
        """
        headers = dict(kwargs.pop("headers", {}) or {})
        if auth:
            headers["Authorization"] = f"Bearer {self.creds.api_key.reveal()}"
        deadline = time.monotonic() + self.deadline_s
        attempt = 0
        what = f"{method} {url.split('?')[0]}" if auth else f"{method} signed download URL"
        while True:
            attempt += 1
            try:
                resp = self.session.request(method, url, headers=headers, timeout=self.timeout_s, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem, status, retry_after = f"{type(exc).__name__}", None, None
            else:
                if resp.status_code < 400:
                    return resp
                if resp.status_code == 404 and ok_404:
                    return None
                status = resp.status_code
                problem = f"HTTP {status}: {_server_message(resp)}"
                if status not in RETRY_STATUS and status < 500:
                    raise FireworksError(self._clean(f"{what} failed: {problem}"), status)
                retry_after = resp.headers.get("Retry-After")
            delay = min(MAX_BACKOFF_S, self.backoff_s * (2 ** (attempt - 1)))
            if retry_after:
                try:
                    delay = min(MAX_BACKOFF_S, max(delay, float(retry_after)))
                except ValueError:
                    pass
            if time.monotonic() + delay > deadline:
                raise FireworksError(self._clean(f"{what} failed after {attempt} attempts: {problem}"), status)
            log.info("%s: %s (attempt %d), retrying in %.2fs", what, self._clean(problem), attempt, delay)
            time.sleep(delay)

    # -- datasets -------------------------------------------------------------------------------
    def get_dataset(self, dataset_id: str) -> dict[str, Any] | None:
        resp = self.request("GET", self._url(f"datasets/{dataset_id}"), ok_404=True)
        return None if resp is None else resp.json()

    def create_dataset(self, dataset_id: str, example_count: int, display_name: str | None = None) -> dict[str, Any]:
        """Create an uploaded dataset; ``exampleCount`` is required by the server (400 without it)."""
        dataset: dict[str, Any] = {"exampleCount": str(int(example_count)), "userUploaded": {}}
        if display_name:
            dataset["displayName"] = display_name[:100]
        try:
            resp = self.request("POST", self._url("datasets"), json={"datasetId": dataset_id, "dataset": dataset})
        except FireworksError as exc:
            if exc.status == 409:  # created by an earlier attempt whose answer was lost
                found = self.get_dataset(dataset_id)
                if found is not None:
                    return found
            raise
        assert resp is not None
        return resp.json()

    def upload_dataset(self, dataset_id: str, filename: str, data: bytes) -> dict[str, Any]:
        """Multipart upload (field ``file``) of one part; parts are split below the 150 MB limit."""
        if len(data) > UPLOAD_LIMIT_BYTES:
            raise FireworksError(f"part {filename} is {len(data)} bytes, over the 150 MB upload limit")
        resp = self.request("POST", self._url(f"datasets/{dataset_id}:upload"),
                            files={"file": (filename, data, "application/jsonl")})
        assert resp is not None
        return resp.json() if resp.content else {}

    def download_urls(self, dataset_id: str) -> dict[str, str]:
        """``filenameToSignedUrls`` of a dataset (body-less GET; see module docstring)."""
        resp = self.request("GET", self._url(f"datasets/{dataset_id}:getDownloadEndpoint"))
        assert resp is not None
        return dict((resp.json() or {}).get("filenameToSignedUrls") or {})

    def fetch_signed(self, url: str) -> bytes:
        """Download one signed URL without our Authorization header."""
        resp = self.request("GET", url, auth=False)
        assert resp is not None
        return resp.content

    # -- batch inference jobs -------------------------------------------------------------------
    def get_job(self, job_id: str) -> dict[str, Any] | None:
        resp = self.request("GET", self._url(f"batchInferenceJobs/{job_id}"), ok_404=True)
        return None if resp is None else resp.json()

    def create_job(self, job_id: str, model: str, input_dataset_id: str, output_dataset_id: str,
                   inference_parameters: dict[str, Any], display_name: str | None = None) -> dict[str, Any]:
        """Create a job under a deterministic id; a 409 (already exists) returns the existing job."""
        body: dict[str, Any] = {
            "model": model,
            "inputDatasetId": self.dataset_name(input_dataset_id),
            "outputDatasetId": self.dataset_name(output_dataset_id),
            "inferenceParameters": inference_parameters,
        }
        if display_name:
            body["displayName"] = display_name[:100]
        try:
            resp = self.request("POST", self._url("batchInferenceJobs"), params={"batchInferenceJobId": job_id},
                                json=body)
        except FireworksError as exc:
            if exc.status == 409:
                found = self.get_job(job_id)
                if found is not None:
                    return found
            raise
        assert resp is not None
        return resp.json()


def short_id(resource_name: str | None) -> str:
    """``accounts/a/datasets/x`` -> ``x`` (jobs report output datasets by resource name)."""
    return (resource_name or "").rstrip("/").split("/")[-1]


def job_progress(job: dict[str, Any]) -> dict[str, Any]:
    """Processed / total / failed from ``jobProgress``; total prefers the larger of declared and processed."""
    p = job.get("jobProgress") or {}

    def num(key: str) -> int:
        try:
            return int(p.get(key) or 0)
        except (TypeError, ValueError):
            return 0

    return {
        "total": max(num("totalInputRequests"), num("totalProcessedRequests")),
        "processed": num("totalProcessedRequests"),
        "succeeded": num("successfullyProcessedRequests"),
        "failed": num("failedRequests"),
        "cached_input_tokens": num("cachedInputTokenCount"),
        "percent": p.get("percent"),
    }
