"""llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) as a test subprocess.

Why: the ``openai_compat`` engine is tested against the real server, serving the real SmolLM2 GGUF,
on 127.0.0.1 and a free port; the server's log goes to a file (a full pipe would block it).
It runs through this module's ``__main__`` so that ``EXCELLENCE_NO_CPU_REPACK=1`` (set here: the test
VM advertises AMX it cannot run) applies inside the server process too.
"""

from __future__ import annotations

import os
import runpy
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.paths import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server(model_path: Path, log_path: Path, n_ctx: int = 2048, alias: str = "smollm2",
                 ready_timeout_s: float = 90.0) -> Iterator[str]:
    """Start the server, wait until ``GET /v1/models`` answers, yield its URL, stop it."""
    port = free_port()
    cmd = [sys.executable, "-m", "tests.support.servers.llama_server", "--model", str(model_path),
           "--model_alias", alias, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
           "--n_gpu_layers", "0"]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w", encoding="utf-8") as log:
        env = {**os.environ, "EXCELLENCE_NO_CPU_REPACK": "1"}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + ready_timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: see {log_path}")
                try:
                    if requests.get(f"{url}/v1/models", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server not ready within {ready_timeout_s:g} s: see {log_path}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


if __name__ == "__main__":
    from workers.engines.cpu_quirks import apply_from_env

    apply_from_env()
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
