"""A small Fireworks REST client for batch inference (requests, retries, secrets kept out of errors).

Endpoints and field names follow Fireworks' API reference (docs.fireworks.ai/api-reference:
create-dataset, upload-dataset-files, get-dataset, create-batch-inference-job,
get-batch-inference-job, delete-batch-inference-job, get-dataset-download-endpoint) and the live notes that the docs omit:

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

import logging
import time
from typing import Any

import requests

from producer.host.env import (  # one definition below workers (plan and doctor use it); the client's names
    DEFAULT_API_BASE as DEFAULT_API_BASE,
)
from producer.host.env import (
    BatchConfigError as BatchConfigError,
)
from producer.host.env import (
    BatchServiceError as BatchServiceError,
)
from producer.host.env import (
    Credentials as Credentials,
)
from producer.host.env import (
    _Secret as _Secret,
)
from producer.host.env import (
    check_api_base as check_api_base,
)
from producer.host.env import (
    is_loopback_host as is_loopback_host,
)
from producer.inputs.fireworks_plan import TERMINAL_OK, TERMINAL_PARTIAL, UPLOAD_LIMIT_BYTES
from workers.batch.retry import RETRY_STATUS, redact, retry_delay

log = logging.getLogger("workers.fireworks")


TERMINAL_FAILED = {"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_DELETING",
                   "JOB_STATE_DELETING_CLEANING_UP", "JOB_STATE_DELETED", "JOB_STATE_ARCHIVED"}
TERMINAL_STATES = TERMINAL_OK | TERMINAL_PARTIAL | TERMINAL_FAILED


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

        Returns None for a 404 when ``ok_404`` (a look-up that found nothing); raises BatchServiceError
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
                    raise BatchServiceError(self._clean(f"{what} failed: {problem}"), status)
                retry_after = resp.headers.get("Retry-After")
            delay = retry_delay(self.backoff_s, attempt, retry_after)
            if time.monotonic() + delay > deadline:
                raise BatchServiceError(self._clean(f"{what} failed after {attempt} attempts: {problem}"), status)
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
        except BatchServiceError as exc:
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
            raise BatchServiceError(f"part {filename} is {len(data)} bytes, over the 150 MB upload limit")
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

    def delete_job(self, job_id: str) -> bool:
        """Delete Batch Inference Job (``DELETE .../batchInferenceJobs/{id}``, the official SDK's
        ``batch_inference_jobs.delete``): how a running job is stopped. False when there is no such job."""
        return self.request("DELETE", self._url(f"batchInferenceJobs/{job_id}"), ok_404=True) is not None

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
        except BatchServiceError as exc:
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
        "input_tokens": num("inputTokens"),
        "output_tokens": num("outputTokens"),
        "percent": p.get("percent"),
    }
