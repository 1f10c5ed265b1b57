"""``python -m producer doctor`` through the real CLI in a subprocess: a clear line and exit 1 for each
problem that stops a run, exit 0 when it can start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from producer.checks.preflight import FAIL, OK, Check, can_start, ensure_ready, format_checks, run_preflight
from tests.support.offline_config import offline_config_dict, write_offline_config
from tests.support.servers.fake_ollama import FakeModel, FakeOllama, FakeOllamaServer
from tests.support.servers.llama_server import free_port

MODEL = "llama3.1:8b-instruct-q4_K_M"


def doctor(tmp_path: Path, **overrides) -> subprocess.CompletedProcess:
    config = write_offline_config(tmp_path, **overrides)
    env = {**os.environ, "EXCELLENCE_QUEUE_DIR": str(tmp_path / "queue"), "PYTHONIOENCODING": "cp1252"}
    return subprocess.run([sys.executable, "-m", "producer", "doctor", "--config", str(config)], cwd=tmp_path,
                          capture_output=True, text=True, encoding="cp1252", errors="replace", env=env, timeout=120)


def lines_of(proc: subprocess.CompletedProcess, name: str) -> list[str]:
    return [line for line in proc.stdout.splitlines() if line.startswith("[") and f"] {name}:" in line]


def ollama_settings(url: str, **extra) -> dict:
    return {"local_engine": "ollama", "local_endpoint": url, "local_model": MODEL, **extra}


def test_ready_with_ollama(tmp_path):
    with FakeOllamaServer(FakeOllama(models=[FakeModel(MODEL, context_length=131072)])) as srv:
        proc = doctor(tmp_path, **ollama_settings(srv.url, n_ctx=8192))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lines_of(proc, "engine")[0].startswith("[ OK ] engine: Ollama at")
    assert lines_of(proc, "model") == [f"[ OK ] model: {MODEL} is pulled"]
    context = lines_of(proc, "context")[0]
    assert context.startswith("[ OK ] context: longest request needs ~") and "of 8192 tokens" in context
    assert lines_of(proc, "versions")[0].startswith("[INFO] versions: Python ")
    assert lines_of(proc, "queue")[0].startswith("[ OK ] queue:")
    assert lines_of(proc, "disk")
    assert proc.stdout.rstrip().endswith("ready: the run can start")


def test_engine_down(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    proc = doctor(tmp_path, **ollama_settings(url))
    assert proc.returncode == 1
    assert lines_of(proc, "engine") == [f"[FAIL] engine: cannot reach Ollama at {url}: start it with `ollama serve`"]
    assert proc.stdout.rstrip().endswith("NOT ready: 1 check failed")
    assert "Traceback" not in proc.stderr


def test_model_missing(tmp_path):
    with FakeOllamaServer(FakeOllama(models=[FakeModel("qwen3:0.6b")])) as srv:
        proc = doctor(tmp_path, **ollama_settings(srv.url))
    assert proc.returncode == 1
    assert lines_of(proc, "model") == [f"[FAIL] model: model {MODEL} is not pulled: run `ollama pull {MODEL}`"]


def test_context_too_small(tmp_path):
    """n_ctx 512 (sent as num_ctx) cannot hold the long open-book prompts."""
    with FakeOllamaServer(FakeOllama(models=[FakeModel(MODEL, context_length=131072)])) as srv:
        proc = doctor(tmp_path, **ollama_settings(srv.url, n_ctx=512))
    assert proc.returncode == 1
    context = lines_of(proc, "context")[0]
    assert context.startswith("[FAIL] context: context too small: longest request needs ~")
    assert "of 512 tokens" in context and context.endswith("raise n_ctx or lower max_new_tokens")


def test_context_capped_by_the_model(tmp_path):
    """The model is trained for 1024 tokens: n_ctx 4096 is capped, and the prompts do not fit."""
    with FakeOllamaServer(FakeOllama(models=[FakeModel(MODEL, context_length=1024)])) as srv:
        proc = doctor(tmp_path, **ollama_settings(srv.url, n_ctx=4096))
    assert proc.returncode == 1
    assert lines_of(proc, "n_ctx") == [f"[WARN] n_ctx: n_ctx 4096 exceeds {MODEL}'s trained context 1024"]
    context = lines_of(proc, "context")[0]
    assert context.startswith("[FAIL] context: context too small:") and "of 1024 tokens" in context
    assert context.endswith("use a longer-context model")


def test_no_gpu_for_gpu_offload(tmp_path):
    from telemetry.nvml import GpuReader

    with GpuReader() as reader:
        if reader.available:
            pytest.skip("this machine has an NVIDIA GPU")
    proc = doctor(tmp_path, local_engine="llama_cpp", local_model="smollm2", n_gpu_layers=-1)
    assert proc.returncode == 1
    gpu = lines_of(proc, "gpu")[0]
    assert gpu.startswith("[FAIL] gpu: no NVIDIA GPU (") and gpu.endswith(
        "but n_gpu_layers is -1: set n_gpu_layers: 0 to run on the CPU, or fix the driver")
    assert lines_of(proc, "model")[0].startswith("[ OK ] model: ")
    # a CPU-only build asked to offload fails before any load (issue 23: fail, not warn)
    assert lines_of(proc, "offload") == ["[FAIL] offload: this llama-cpp-python build is CPU-only but n_gpu_layers "
                                         "is -1: set n_gpu_layers: 0, or install a CUDA build (docs/windows.md)"]


def test_missing_gguf_and_cpu_only_is_fine(tmp_path):
    proc = doctor(tmp_path, local_engine="llama_cpp", local_model=str(tmp_path / "nope.gguf"), n_gpu_layers=0)
    assert proc.returncode == 1
    assert lines_of(proc, "model") == [f"[FAIL] model: model file not found: {tmp_path / 'nope.gguf'} "
                                       "(give a .gguf path or one of: smollm2)"]
    assert lines_of(proc, "gpu")[0].startswith(("[INFO] gpu: no NVIDIA GPU", "[ OK ] gpu:"))


def test_openai_compat_server_down(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    proc = doctor(tmp_path, local_engine="openai_compat", local_endpoint=url, local_model="smollm2")
    assert proc.returncode == 1
    assert lines_of(proc, "engine")[0].startswith(f"[FAIL] engine: cannot reach OpenAI-compatible server at {url}: ")


def test_run_preflight_api_and_ensure_ready(tmp_path, monkeypatch):
    """The in-process API that `run`/`enqueue` call: same checks, one-line UserError (exit 1) on failure."""
    from config.schema import EvalConfig
    from producer.host.console import UserError

    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(tmp_path / "queue"))
    cfg = EvalConfig(**offline_config_dict(tmp_path))  # dry_run: always ready
    checks = run_preflight(cfg)
    assert can_start(checks) and all(isinstance(c, Check) for c in checks)
    url = f"http://127.0.0.1:{free_port()}"
    bad = EvalConfig(**offline_config_dict(tmp_path, **ollama_settings(url)))
    with pytest.raises(UserError) as info:
        ensure_ready(bad)
    assert info.value.exit_code == 1
    assert str(info.value).startswith(f"preflight failed: engine: cannot reach Ollama at {url}")
    assert "\n" not in str(info.value)
    text = format_checks([Check("a", OK, "fine"), Check("b", FAIL, "broken")])
    assert text.splitlines() == ["[ OK ] a: fine", "[FAIL] b: broken", "NOT ready: 1 check failed"]
