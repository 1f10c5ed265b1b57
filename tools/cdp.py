"""Drive headless Chromium over the DevTools protocol with the standard library only.

Why no websocket package: the page checks (tests/test_items_html.py, tools/bench_items_view.py) need
five protocol calls (navigate, evaluate, screenshot); a 60-line RFC 6455 client is less to install and
keep than a dependency, and it runs the same on Windows (a TCP port on 127.0.0.1, not a POSIX pipe).

    with Chromium() as browser:
        browser.open(Path("items.html"))
        rows = browser.eval("document.querySelectorAll('tr').length")
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tools.check_report_html import find_chromium  # the repository root is on sys.path (tests, tools)

LISTENING = re.compile(r"DevTools listening on (ws://[^\s]+)")


class CdpError(RuntimeError):
    """Chromium is missing, did not start, or answered a command with an error."""


class Chromium:
    """One headless Chromium with a throwaway profile, and a session attached to its one page."""

    def __init__(self, width: int = 1280, height: int = 900, timeout_s: float = 60) -> None:
        self.width, self.height, self.timeout_s = width, height, timeout_s
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        browser = find_chromium()
        if browser is None:
            raise CdpError("chromium not found (Debian: apt-get install chromium)")
        # chromium's helper processes may still write the profile while they exit: never fail on cleanup
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-cdp-", ignore_cleanup_errors=True)
        self._proc = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
             "--remote-debugging-port=0", f"--user-data-dir={self._profile.name}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
            start_new_session=os.name != "nt")  # its own process group: __exit__ ends the helpers too
        self._sock: socket.socket | None = None
        try:
            url = self._browser_url()
            host, port, path = re.match(r"ws://([^:/]+):(\d+)(/.*)", url).groups()  # type: ignore[union-attr]
            self._sock = socket.create_connection((host, int(port)), timeout=self.timeout_s)
            self._handshake(host, int(port), path)
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.call("Page.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                      deviceScaleFactor=1, mobile=False)  # the viewport itself, not the window around it
        except BaseException:
            self.__exit__()  # no browser left running when the start fails
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._sock is not None:
                self._sock.close()
        finally:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            if os.name != "nt":  # renderer/zygote helpers outlive the browser process for a moment
                import signal  # lazy: POSIX only

                try:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            self._profile.cleanup()

    def _browser_url(self) -> str:
        deadline = time.monotonic() + self.timeout_s
        seen: list[str] = []
        assert self._proc.stderr is not None
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            if not line and self._proc.poll() is not None:
                break
            seen.append(line.strip())
            found = LISTENING.search(line)
            if found:  # keep reading: a full stderr pipe would stall the browser
                threading.Thread(target=self._proc.stderr.read, daemon=True).start()
                return found.group(1)
        raise CdpError(f"chromium did not open its DevTools port: {(seen or ['no output'])[-1]}")

    # RFC 6455, client side: masked text frames out, unmasked frames in
    def _handshake(self, host: str, port: int, path: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        self._sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                           .encode("ascii"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self._sock.recv(1)
            if not chunk:
                raise CdpError("DevTools closed the connection during the handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise CdpError(f"DevTools refused the websocket: {head.splitlines()[0]!r}")

    def _send(self, text: str) -> None:
        data, mask = text.encode("utf-8"), os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
        self._sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise CdpError("DevTools closed the connection")
            buf += chunk
        return bytes(buf)

    def _recv(self) -> str:
        message = bytearray()
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            payload = self._recv_exact(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise CdpError("DevTools closed the websocket")
            if opcode in (0x9, 0xA):  # ping / pong: not used by Chromium's DevTools server
                continue
            message += payload
            if b0 & 0x80:
                return message.decode("utf-8")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command (to the page session once attached) and wait for its answer."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if getattr(self, "_session", None):
            msg["sessionId"] = self._session
        self._send(json.dumps(msg))
        while True:
            reply = json.loads(self._recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self._events.append(reply)

    def wait_event(self, method: str) -> dict[str, Any]:
        """The first event ``method`` received (now or earlier, since the last wait)."""
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method:
                    del self._events[: i + 1]
                    return event.get("params", {})
            self._events.append(json.loads(self._recv()))

    def open(self, page: Path, fragment: str = "") -> float:
        """Navigate to a local file (``#fragment`` appended) and wait for its load event; returns the
        seconds from the navigation command to the load event."""
        self._events.clear()
        start = time.perf_counter()
        self.call("Page.navigate", url=Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else ""))
        self.wait_event("Page.loadEventFired")
        return time.perf_counter() - start

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values only)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            what = (details.get("exception") or {}).get("description") or details.get("text")
            raise CdpError(f"page script failed: {' '.join(str(what).split())}")
        return result["result"].get("value")

    def screenshot(self, out_png: Path, full_page: bool = False) -> Path:
        """A PNG of the viewport (or the whole page, up to 8000 px high)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            height = min(int(self.eval("document.documentElement.scrollHeight")), 8000)
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
        data = base64.b64decode(self.call("Page.captureScreenshot", **params)["data"])
        Path(out_png).write_bytes(data)
        return Path(out_png)
