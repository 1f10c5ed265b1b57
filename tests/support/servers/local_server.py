"""The one way the test servers run: a ThreadingHTTPServer on 127.0.0.1 in a daemon thread.

Why one base: the fake Ollama and the fault-injecting OpenAI server differ only in their handler and
state; starting, addressing and stopping them is the same code.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LocalServer:
    """Serve ``handler`` (bound to ``state``) on 127.0.0.1 (a free port unless given); a context manager."""

    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer

    def __init__(self, handler: type[BaseHTTPRequestHandler], state: Any, port: int = 0) -> None:
        self.state = state
        bound = type("BoundHandler", (handler,), {"state": state})
        self.httpd = self.server_class(("127.0.0.1", port), bound)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serve_until_interrupted(self, what: str) -> None:
        """A server's ``python -m`` entry point: say where it listens, serve until Ctrl+C."""
        print(f"{what} on {self.url}", flush=True)
        try:
            self.httpd.serve_forever()
        except KeyboardInterrupt:
            pass

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
