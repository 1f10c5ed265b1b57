"""What the batch providers' offline test servers share (``--dry-run`` and the tests): route matching
and, for the servers behind an official SDK, starting, stopping and the client that hung up.

Why here: each provider's fake answers its own API in its own module; the plumbing around the
answers is one piece of code, not one copy per provider.
"""

from __future__ import annotations

import re
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any

Routes = list[tuple[str, re.Pattern[str], str]]  # (method, path pattern, endpoint name)


def match_route(routes: Routes, method: str, path: str) -> tuple[str, dict[str, str]]:
    """(endpoint name, path arguments) of the first route with this method and path; ("unknown", {})."""
    for m, rx, name in routes:
        hit = rx.match(path)
        if hit and m == method:
            return name, hit.groupdict()
    return "unknown", {}


class SdkFakeServer(ThreadingHTTPServer):
    """A fake provider API on 127.0.0.1 (a free port unless given), served from a daemon thread. Subclasses
    set ``handler``, ``state_class`` and ``thread_name``; ``state.release`` frees hung endpoints at stop."""

    daemon_threads = True
    handler: Any
    state_class: Any
    thread_name = "fake-provider"

    def __init__(self, state: Any = None, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), self.handler)
        self.state = state or self.state_class()

    def start(self) -> Any:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=self.thread_name,
                         daemon=True).start()
        return self

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed or timed out while a hung endpoint waited: expected, not a server fault."""
        if isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            return
        super().handle_error(request, client_address)

    def stop(self) -> None:
        self.state.release.set()
        self.shutdown()
        self.server_close()
