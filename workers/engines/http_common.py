"""HTTP plumbing shared by the Ollama and OpenAI-compatible engines: one error vocabulary.

Why: the queue retries ``TransientEngineError`` with backoff and records ``PermanentEngineError`` once,
so every HTTP failure must land in the right class with a one-line message a user can act on:
connection refused / timeouts / dropped connections / answers cut off mid-body (a truncated or
reset response, an incomplete chunked read, JSON that ends early) / 408 / 429 / 5xx are transient; other 4xx are
permanent and carry the server's own message; an unknown model says how to get it. Secrets (API keys)
are sent in headers only and never appear in a message.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import requests
import urllib3

from config.secrets import redact_secrets
from workers.engines.base import PermanentEngineError, TransientEngineError

TRANSIENT_STATUS = {408, 429}
PREFLIGHT_TIMEOUT_S = 5.0  # a preflight probe waits no longer than this for a server
MAX_MESSAGE = 300


class EngineUnreachableError(TransientEngineError):
    """Nothing listens at the endpoint (connection refused, DNS): transient for the queue, fatal for preflight."""


class EngineTimeoutError(TransientEngineError):
    """No answer within ``request_timeout_s``: retried, and counted by the hung-server check (health.py)."""


# A response that started and then broke off: the server went away or the connection was reset mid-answer.
# requests wraps most of these (ChunkedEncodingError, ContentDecodingError), but urllib3 and http.client can
# let theirs through, and a reset can surface as the builtin ConnectionError.
CUT_OFF = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.DecodeError,
    http.client.HTTPException,
    ConnectionError,
)


class ModelNotFoundError(PermanentEngineError):
    """The server answered but does not have the model."""


def one_line(text: Any, limit: int = MAX_MESSAGE) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def start_hint(service: str) -> str:
    """What to run when the server is not up."""
    if service == "Ollama":
        return "start it with `ollama serve`"
    return "start the server (e.g. `llama-server -m MODEL.gguf --port 8080` or `python -m llama_cpp.server --model MODEL.gguf`)"


def pull_hint(service: str, model: str) -> str:
    if service == "Ollama":
        return f"model {model} is not pulled: run `ollama pull {model}`"
    return f"model {model} is not served at this endpoint: check local_model against GET /v1/models"


def server_message(resp: requests.Response) -> str:
    """The server's error text: Ollama ``{"error": "..."}``, OpenAI ``{"error": {"message": ...}}``, or the body;
    every known key redacted (some servers echo the credentials they refused)."""
    return redact_secrets(_server_text(resp))


def _server_text(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except (ValueError, json.JSONDecodeError):
        return one_line(resp.text or resp.reason or "")
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body))
        if isinstance(err, dict):
            err = err.get("message") or err
        return one_line(err if isinstance(err, str) else json.dumps(err, ensure_ascii=False))
    return one_line(body)


def looks_like_missing_model(status: int, message: str) -> bool:
    low = message.lower()
    return status == 404 and "model" in low and ("not found" in low or "does not exist" in low)


def raise_for_status(resp: requests.Response, service: str, model: str) -> None:
    """Map a non-2xx response to the engine error classes (no-op on success)."""
    status = resp.status_code
    if status < 400:
        return
    message = server_message(resp)
    where = f"{service} at {resp.url}"
    if status in TRANSIENT_STATUS or status >= 500:
        exc = TransientEngineError(f"{where}: HTTP {status}: {message}")
        exc.retry_after = retry_after_s(resp.headers.get("Retry-After"))  # the queue waits at least this
        raise exc
    if looks_like_missing_model(status, message):
        raise ModelNotFoundError(f"{pull_hint(service, model)} ({message})")
    raise PermanentEngineError(f"{where}: HTTP {status}: {message}")


def retry_after_s(value: str | None, cap_s: float = 300.0) -> float | None:
    """``Retry-After`` in seconds (the delay form; an HTTP date is ignored), at most ``cap_s``."""
    try:
        return min(cap_s, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def request_json(
    session: requests.Session,
    method: str,
    url: str,
    *,
    service: str,
    model: str,
    timeout_s: float,
    payload: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One HTTP call returning the decoded JSON object; every failure becomes an engine error."""
    try:
        resp = session.request(method, url, json=payload, timeout=timeout_s, headers=headers)
    except requests.exceptions.ConnectionError as exc:
        if _is_refused(exc):
            raise EngineUnreachableError(f"cannot reach {service} at {base_of(url)}: {start_hint(service)}") from None
        raise TransientEngineError(f"{service} at {base_of(url)}: connection dropped ({type(exc).__name__})") from None
    except requests.exceptions.Timeout:
        raise EngineTimeoutError(f"{service} at {base_of(url)}: no answer within {timeout_s:g} s") from None
    except CUT_OFF as exc:
        raise TransientEngineError(
            f"{service} at {base_of(url)}: answer cut off mid-body ({type(exc).__name__})") from None
    except requests.exceptions.RequestException as exc:
        raise PermanentEngineError(f"{service} at {base_of(url)}: {one_line(type(exc).__name__)}") from None
    raise_for_status(resp, service, model)
    try:
        body = resp.json()
    except (ValueError, json.JSONDecodeError):
        raise TransientEngineError(f"{service} at {resp.url}: answer is not JSON: {one_line(resp.text, 120)}") from None
    if not isinstance(body, dict):
        raise TransientEngineError(f"{service} at {resp.url}: answer is not a JSON object")
    if "error" in body and len(body) == 1:  # some servers send errors with HTTP 200
        raise PermanentEngineError(f"{service} at {resp.url}: {server_message(resp)}")
    return body


def base_of(url: str) -> str:
    """scheme://host:port of a URL (error messages name the server, not the path)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def _is_refused(exc: BaseException) -> bool:
    """True when nothing listens (refused, unknown host), False for a connection dropped mid-request."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError):
            return True
        text = str(cur)
        if "NewConnectionError" in type(cur).__name__ or "Failed to establish a new connection" in text:
            return True
        if "NameResolutionError" in type(cur).__name__:
            return True
        todo.extend([cur.__cause__, cur.__context__, *[a for a in getattr(cur, "args", ()) if isinstance(a, BaseException)]])
        reason = getattr(cur, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    return False


def make_session(max_connections: int) -> requests.Session:
    """A pooled session sized for ``max_connections`` overlapping requests (no library-level retries:
    the queue owns retries and backoff)."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=max(1, max_connections), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def normalise_endpoint(endpoint: str) -> str:
    """Strip trailing slashes and a trailing ``/v1`` (we add paths ourselves)."""
    base = endpoint.strip().rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return base


class HttpEngine:
    """What every HTTP engine shares: the endpoint, the pooled session, the timeout and one ``_call``
    that lands every failure in the queue's error classes. Subclasses set ``name``, ``SERVICE`` (the
    server's name in messages), ``ENDPOINT_EXAMPLE`` and, where the server wants one, ``headers()``."""

    name = ""
    SERVICE = "server"
    ENDPOINT_EXAMPLE = "http://127.0.0.1:8080"
    thread_safe = True

    def __init__(self, cfg: Any, model: str | None = None) -> None:
        if not cfg.local_endpoint:
            raise PermanentEngineError(f"local_endpoint is not set (e.g. {self.ENDPOINT_EXAMPLE})")
        self.cfg = cfg
        self.model = model or cfg.local_model or ""
        self.base_url = normalise_endpoint(cfg.local_endpoint)
        self.timeout_s = cfg.request_timeout_s
        self._headers = self.headers()
        self.session = make_session(1)
        # requests in flight: the explicit setting, or what auto resolves to for this server
        self.concurrency = self.resolve_concurrency()
        if self.concurrency > 1:
            self.session.close()
            self.session = make_session(self.concurrency)

    def resolve_concurrency(self) -> int:
        """Requests in flight this engine keeps: ``max_concurrent_requests``, or 1 when auto (the
        server does not report its slots; Ollama's API does not)."""
        return int(self.cfg.max_concurrent_requests or 1)

    def headers(self) -> dict[str, str]:
        """Extra headers sent with every request (an API key); none by default."""
        return {}

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None,
              timeout_s: float | None = None) -> dict[str, Any]:
        return request_json(
            self.session, method, f"{self.base_url}{path}", service=self.SERVICE, model=self.model,
            timeout_s=timeout_s or self.timeout_s, payload=payload, headers=self._headers or None,
        )

    def close(self) -> None:
        self.session.close()
