"""A test server that answers like Ollama's documented native API (docs/api.md in ollama/ollama).

Why: the Ollama binary cannot be installed here, but the engine, doctor and token counting must be
tested against real HTTP. Responses reproduce Ollama's field names and shapes: ``/api/chat``,
``/api/generate``, ``/api/tags``, ``/api/show``, ``/api/ps``, ``/api/embed``; durations in
nanoseconds; ``done_reason`` "stop" or "length"; a 404 ``{"error": "model \"x\" not found, try pulling
it first"}`` for an unknown model. Tests script faults (HTTP 500, slow answers, an absent
``prompt_eval_count``) through ``FakeOllama.script`` and read every request body the client sent in
``FakeOllama.requests``.

Run alone: ``python -m tests.support.servers.fake_ollama --port 11434``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.servers.local_server import LocalServer

CREATED_AT = "2024-07-22T20:33:28.123648Z"
DIGEST = "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72"


@dataclass
class FakeModel:
    name: str = "smollm2:135m"
    family: str = "llama"
    context_length: int = 8192
    parameter_size: str = "135M"
    quantization_level: str = "Q4_1"
    size: int = 100_000_000
    embeddings: bool = False  # chat models in current Ollama refuse /api/embed
    digest: str = DIGEST  # sha256 of the model's manifest: a re-pulled or re-created model gets a new one

    def details(self) -> dict[str, Any]:
        return {"parent_model": "", "format": "gguf", "family": self.family, "families": [self.family],
                "parameter_size": self.parameter_size, "quantization_level": self.quantization_level}


@dataclass
class Step:
    """One scripted reaction for the next generation request (consumed in order)."""

    status: int = 200
    error: str | None = None
    delay_s: float = 0.0
    omit_prompt_eval_count: bool = False
    text: str | None = None
    thinking: str | None = None
    retry_after: str | None = None  # a Retry-After header on an error answer (a proxy in front of Ollama)


@dataclass
class FakeOllama:
    models: list[FakeModel] = field(default_factory=lambda: [FakeModel()])
    answer: str = "Paris is the capital of France."
    loaded: list[str] = field(default_factory=list)
    script: list[Step] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # optional real model: body -> (text, prompt_eval_count, eval_count, done_reason); see smollm2_responder
    responder: Callable[[dict[str, Any]], tuple[str, int, int, str]] | None = None

    def find(self, name: str) -> FakeModel | None:
        full = name if ":" in name else f"{name}:latest"
        for m in self.models:
            if m.name in (name, full):
                return m
        return None

    def next_step(self) -> Step:
        with self.lock:
            return self.script.pop(0) if self.script else Step()


VERSION = "0.12.6"  # what /api/version answers


def _count(text: str) -> int:
    return max(1, len(text.split()))


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # TCP_NODELAY: a body written after its headers waited ~40 ms (delayed ACK)
    server_version = "FakeOllama/0.1"
    state: FakeOllama  # set on the subclass per server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet tests
        return

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        return json.loads(self.rfile.read(length).decode("utf-8"))

    def _record(self, body: dict[str, Any] | None) -> None:
        with self.state.lock:
            self.state.requests.append((self.command, self.path, body))

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._record(None)
        if self.path == "/api/tags":
            self._send(200, {"models": [
                {"name": m.name, "model": m.name, "modified_at": CREATED_AT, "size": m.size, "digest": m.digest,
                 "details": m.details()} for m in self.state.models]})
        elif self.path == "/api/ps":
            out = []
            for name in self.state.loaded:
                m = self.state.find(name)
                if m:
                    out.append({"name": m.name, "model": m.name, "size": m.size, "digest": m.digest,
                                "details": m.details(), "expires_at": "2024-07-22T21:03:28.123648Z",
                                "size_vram": m.size, "context_length": 4096})
            self._send(200, {"models": out})
        elif self.path == "/api/version":  # GET /api/version -> {"version": "0.12.6"}
            self._send(200, {"version": VERSION})
        elif self.path in ("/", ""):
            body = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._send(404, {"error": "404 page not found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self._body() or {}
        self._record(body)
        name = str(body.get("model") or "")
        model = self.state.find(name)
        if self.path == "/api/show":
            if model is None:
                self._send(404, {"error": f"model '{name}' not found"})
                return
            arch = model.family
            self._send(200, {
                "modelfile": f"FROM {model.name}\n", "parameters": "stop \"<|im_end|>\"",
                "template": "{{ .Prompt }}", "details": model.details(),
                "model_info": {"general.architecture": arch, "general.parameter_count": 134515008,
                               f"{arch}.context_length": model.context_length, f"{arch}.block_count": 30,
                               f"{arch}.embedding_length": 576, f"{arch}.attention.head_count": 9,
                               f"{arch}.attention.head_count_kv": 3},
                "capabilities": ["completion"], "modified_at": CREATED_AT})
            return
        if self.path not in ("/api/chat", "/api/generate", "/api/embed"):
            self._send(404, {"error": "404 page not found"})
            return
        if model is None:
            self._send(404, {"error": f"model \"{name}\" not found, try pulling it first"})
            return
        if self.path == "/api/embed":
            if not model.embeddings:
                self._send(400, {"error": "this model does not support embeddings"})
                return
            texts = body.get("input")
            texts = [texts] if isinstance(texts, str) else list(texts or [])
            self._send(200, {"model": model.name, "embeddings": [[0.1, 0.2, 0.3] for _ in texts],
                             "total_duration": 14143917, "load_duration": 1019500,
                             "prompt_eval_count": sum(_count(t) for t in texts)})
            return
        self._generate(body, model)

    def _generate(self, body: dict[str, Any], model: FakeModel) -> None:
        step = self.state.next_step()
        if step.delay_s:
            time.sleep(step.delay_s)
        if step.status != 200:
            self._send(step.status, {"error": step.error or "llama runner process has terminated: exit status 2"},
                       {"Retry-After": step.retry_after} if step.retry_after else None)
            return
        with self.state.lock:
            if model.name not in self.state.loaded:
                self.state.loaded.append(model.name)
        options = body.get("options") or {}
        if self.state.responder is not None and step.text is None:
            text, prompt_words, n_out, done_reason = self.state.responder(body)
        else:
            words = (step.text if step.text is not None else self.state.answer).split()
            limit = options.get("num_predict")
            done_reason = "stop"
            if isinstance(limit, int) and 0 <= limit < len(words):
                words, done_reason = words[:limit], "length"
            text, n_out = " ".join(words), len(words)
            if self.path == "/api/chat":
                prompt_words = sum(_count(m.get("content") or "") for m in body.get("messages") or [])
            else:
                prompt_words = _count(body.get("prompt") or "")
        out: dict[str, Any] = {"model": model.name, "created_at": CREATED_AT}
        if self.path == "/api/chat":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if step.thinking:
                message["thinking"] = step.thinking
            out["message"] = message
        else:
            out["response"] = text
            if step.thinking:
                out["thinking"] = step.thinking
        out.update({"done": True, "done_reason": done_reason, "total_duration": 5_191_566_416,
                    "load_duration": 2_154_458, "prompt_eval_count": prompt_words,
                    "prompt_eval_duration": 383_809_000, "eval_count": n_out,
                    "eval_duration": 4_799_921_000})
        if self.path == "/api/generate" and not body.get("raw"):
            out["context"] = [1, 2, 3]
        if step.omit_prompt_eval_count:
            del out["prompt_eval_count"]
            del out["prompt_eval_duration"]
        self._send(200, out)


def smollm2_responder(n_ctx: int = 2048) -> Callable[[dict[str, Any]], tuple[str, int, int, str]]:
    """Answers from the real SmolLM2 (llama-cpp-python, CPU), honouring the options Ollama would, with
    Ollama's defaults when an option is absent: temperature 0.8, top_p 0.9, top_k 40, min_p 0.0,
    repeat_penalty 1.1 (llama.cpp's own last-64-token window), presence/frequency_penalty 0, num_predict,
    stop, seed. One request at a time."""
    from config.llama_cpp_import import import_llama_cpp
    from config.model_files import resolve_model_path
    from workers.engines.cpu_quirks import disable_cpu_repack

    disable_cpu_repack()  # VMs that advertise AMX they cannot run (see cpu_quirks)
    llm = import_llama_cpp().Llama(model_path=str(resolve_model_path("smollm2")), n_ctx=n_ctx, n_gpu_layers=0,
                                   verbose=False)
    lock = threading.Lock()

    def respond(body: dict[str, Any]) -> tuple[str, int, int, str]:
        o = body.get("options") or {}
        kwargs = {"temperature": o.get("temperature", 0.8), "top_p": o.get("top_p", 0.9), "top_k": o.get("top_k", 40),
                  "min_p": o.get("min_p", 0.0), "max_tokens": o.get("num_predict", 128), "stop": o.get("stop") or [],
                  "seed": o.get("seed"), "repeat_penalty": o.get("repeat_penalty", 1.1),
                  "presence_penalty": o.get("presence_penalty", 0.0),
                  "frequency_penalty": o.get("frequency_penalty", 0.0)}
        with lock:
            if "messages" in body:
                out = llm.create_chat_completion(messages=body["messages"], **kwargs)
                text = out["choices"][0]["message"]["content"] or ""
            else:
                out = llm.create_completion(prompt=body.get("prompt") or "", **kwargs)
                text = out["choices"][0]["text"]
        usage = out["usage"]
        return text, usage["prompt_tokens"], usage["completion_tokens"], out["choices"][0]["finish_reason"]

    return respond


class FakeOllamaServer(LocalServer):
    """Start/stop the fake on 127.0.0.1 (free port) in a daemon thread."""

    def __init__(self, state: FakeOllama | None = None, port: int = 0) -> None:
        super().__init__(Handler, state or FakeOllama(), port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--model", default="smollm2:135m")
    parser.add_argument("--context-length", type=int, default=8192)
    args = parser.parse_args()
    server = FakeOllamaServer(FakeOllama(models=[FakeModel(args.model, context_length=args.context_length)]), args.port)
    server.serve_until_interrupted("fake Ollama")


if __name__ == "__main__":
    main()
