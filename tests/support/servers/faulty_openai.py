"""An OpenAI-compatible chat server on 127.0.0.1 that fails the ways a real one does on a bad night.

Why: the engine-fault and crash-drill tests need real HTTP failures, not exceptions raised in-process:
a body cut off after its headers (``Content-Length`` promises more than is sent, then the connection
closes), a connection reset before any answer, HTTP 500, a JSON body that ends mid-object, and a
server that accepts a request and never answers. Answers follow ``POST /v1/chat/completions`` as
OpenAI documents it (``choices[0].message.content``, ``finish_reason``, ``usage``); the text is a pure
function of the messages, so a re-sent request gets the same answer.

Faults come from ``FaultPlan``: a script (one fault per generation request, consumed in order), shares
drawn per (request, attempt) from a seeded RNG (the same run fails the same way every time), or a
mode for every request: ``hang`` (generation never answers; ``GET`` still does, like Ollama with a
stuck runner) or ``frozen`` (nothing answers at all, like a stopped process). ``FaultState`` counts
every generation request per message key and every complete answer delivered, so a drill can tell a
retry after a fault from a request sent again after a kill.

Run alone: ``python -m tests.support.servers.faulty_openai --port 8080 --faults truncate=0.1,e500=0.1``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.servers.local_server import LocalServer

FAULTS = ("truncate", "reset", "e500", "malformed", "hang")


def parse_shares(spec: str) -> dict[str, float]:
    """``truncate=0.1,e500=0.05`` -> {"truncate": 0.1, "e500": 0.05} (unknown names are an error)."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        name, _, value = part.partition("=")
        if name.strip() not in FAULTS:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
        out[name.strip()] = float(value)
    return out


@dataclass
class FaultPlan:
    script: list[str] = field(default_factory=list)  # "ok" or a FAULTS name, one per generation request
    shares: dict[str, float] = field(default_factory=dict)
    mode: str = "ok"  # ok | hang | frozen
    seed: int = 0
    hang_s: float = 3600.0
    latency_s: float = 0.0  # every answer takes this long (a model that needs time to generate)


@dataclass
class FaultState:
    plan: FaultPlan = field(default_factory=FaultPlan)
    model: str = "smollm2"
    sent: Counter = field(default_factory=Counter)  # generation requests received, per message key
    answered: Counter = field(default_factory=Counter)  # complete 200 answers delivered, per message key
    faults: Counter = field(default_factory=Counter)
    gets: int = 0
    in_flight: int = 0  # generation requests being handled now
    max_in_flight: int = 0  # the most handled at once (what a client's concurrency looked like)
    props: dict[str, Any] | None = None  # set: GET /props answers it, as llama-server does (total_slots...)
    api_key: str | None = None  # set: generation needs this Bearer key; a wrong one is echoed in the 401
    connections: set = field(default_factory=set)  # open client sockets (an outage drops them too)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)  # set: hung handlers give up

    def choose(self, key: str) -> str:
        with self.lock:
            self.sent[key] += 1
            n = self.sent[key]
            if self.plan.mode != "ok":
                fault = "hang"
            elif self.plan.script:
                fault = self.plan.script.pop(0)
            else:
                draw = random.Random(f"{self.plan.seed}:{key}:{n}").random()
                fault, edge = "ok", 0.0
                for name in FAULTS:
                    edge += self.plan.shares.get(name, 0.0)
                    if draw < edge:
                        fault = name
                        break
            self.faults[fault] += 1
            return fault


def message_key(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def answer_text(messages: list[dict[str, Any]]) -> str:
    return f"Answer {message_key(messages)[:8]}."


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # TCP_NODELAY: a body written after its headers waited ~40 ms (delayed ACK)
    server_version = "FaultyOpenAI/0.1"
    protocol_version = "HTTP/1.1"  # keep-alive, as llama-server and vLLM speak it
    state: FaultState

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet tests
        return

    def setup(self) -> None:
        super().setup()
        with self.state.lock:
            self.state.connections.add(self.connection)

    def finish(self) -> None:
        with self.state.lock:
            self.state.connections.discard(self.connection)
        super().finish()

    def _send_bytes(self, status: int, data: bytes, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _hang(self) -> None:
        self.state.release.wait(self.state.plan.hang_s)
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.state.plan.mode == "frozen":
            self._hang()
            return
        with self.state.lock:
            self.state.gets += 1
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send_bytes(200, json.dumps({"object": "list", "data": [
                {"id": self.state.model, "object": "model", "owned_by": "test"}]}).encode("utf-8"))
        elif self.path.rstrip("/") == "/props" and self.state.props is not None:
            self._send_bytes(200, json.dumps(self.state.props).encode("utf-8"))
        else:
            self._send_bytes(200, b'{"status": "ok"}')

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length).decode("utf-8") or "{}")
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send_bytes(404, b'{"error": {"message": "not found"}}')
            return
        if self.state.api_key is not None and self.headers.get("Authorization") != f"Bearer {self.state.api_key}":
            # some servers echo the credentials they refused (issue 30, item 3)
            said = json.dumps({"error": {"message": f"invalid credentials: {self.headers.get('Authorization')}",
                                         "type": "authentication_error"}})
            self._send_bytes(401, said.encode("utf-8"))
            return
        with self.state.lock:
            self.state.in_flight += 1
            self.state.max_in_flight = max(self.state.max_in_flight, self.state.in_flight)
        try:
            self._generate(body)
        finally:
            with self.state.lock:
                self.state.in_flight -= 1

    def _generate(self, body: dict[str, Any]) -> None:
        messages = body.get("messages") or []
        key = message_key(messages + [{"temperature": body.get("temperature")}])  # one key per request
        fault = self.state.choose(key)
        if fault == "hang":
            self._hang()
            return
        if fault == "reset":  # RST before any byte of the answer
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if self.state.plan.latency_s:
            time.sleep(self.state.plan.latency_s)
        if fault == "e500":
            self._send_bytes(500, b'{"error": {"message": "llama runner process has terminated", "code": 500}}')
            return
        text = answer_text(messages)
        words = len(text.split())
        out = {"id": f"chatcmpl-{key}", "object": "chat.completion", "created": int(time.time()),
               "model": body.get("model") or self.state.model,
               "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 10 + sum(len(str(m.get("content") or "").split()) for m in messages),
                         "completion_tokens": words,
                         "total_tokens": 10 + words + sum(len(str(m.get("content") or "").split()) for m in messages)}}
        data = json.dumps(out).encode("utf-8")
        if fault == "truncate":  # headers promise the whole body; half of it arrives, then the connection ends
            self.close_connection = True
            self._send_bytes(200, data[: len(data) // 2], length=len(data))
            return
        if fault == "malformed":  # a complete HTTP answer whose JSON ends mid-object
            self._send_bytes(200, data[: len(data) // 2])
            return
        self._send_bytes(200, data)
        with self.state.lock:
            self.state.answered[key] += 1


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (killed worker, timeout) is part of the drill, not an error to print."""
        return


class FaultyOpenAIServer(LocalServer):
    """Start/stop the server on 127.0.0.1 (a free port unless given) in a daemon thread."""

    server_class = _QuietServer

    def __init__(self, state: FaultState | None = None, port: int = 0) -> None:
        super().__init__(Handler, state or FaultState(), port)

    def close(self) -> None:
        self.state.release.set()  # hung handlers return first, or shutdown() would wait for them
        super().close()

    def go_down(self) -> None:
        """An outage as a crashed engine makes it: the port refuses and every kept-alive connection is cut
        (a thread server would otherwise go on answering on them). ``FaultyOpenAIServer(state, port)``
        on the same port brings it back."""
        self.close()
        with self.state.lock:
            conns = list(self.state.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.state.release.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--faults", default="", help="shares, e.g. truncate=0.1,reset=0.05,e500=0.05")
    parser.add_argument("--mode", choices=("ok", "hang", "frozen"), default="ok")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-s", type=float, default=0.0, help="every answer takes this long")
    args = parser.parse_args()
    plan = FaultPlan(shares=parse_shares(args.faults), mode=args.mode, seed=args.seed, latency_s=args.latency_s)
    server = FaultyOpenAIServer(FaultState(plan=plan), args.port)
    server.serve_until_interrupted("faulty OpenAI-compatible server")


if __name__ == "__main__":
    main()
