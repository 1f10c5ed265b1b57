"""A real token on the card before the run (issue 23, item 2): doctor and run's preflight load the model
in a child process and decode one token.

Why: ggml aborts the process when the GPU code cannot run; ``doctor`` used to die with it (exit 134, no
diagnosis). The abort is reproduced with the real engine's load under the ``load_abort`` fault drill.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.cli import PY_FLAGS, cli_env
from tests.support.paths import ROOT
from workers.engines.llama_cpp_probe import likely_cause

DEMO = str(ROOT / "config" / "eval_config.demo.yaml")


def _doctor(tmp_path, **env_extra: str) -> subprocess.CompletedProcess:
    env = cli_env(tmp_path / "queue") | env_extra
    return subprocess.run([sys.executable, *PY_FLAGS, "-m", "producer", "doctor", "--config", DEMO], cwd=ROOT,
                          env=env, capture_output=True, text=True, encoding="utf-8", timeout=300)


@pytest.mark.realmodel
def test_doctor_reports_the_backend_and_the_first_token_time(tmp_path):
    proc = _doctor(tmp_path)
    line = next(ln for ln in proc.stdout.splitlines() if "token" in ln and "first token in" in ln)
    assert line.lstrip().startswith("[ OK ]") and "CPU: loaded in" in line and "llama.cpp:" in line, proc.stdout
    context = next(ln for ln in proc.stdout.splitlines() if ln.lstrip().startswith("[ OK ] context:"))
    assert "counted with the GGUF's tokenizer and chat template" in context


@pytest.mark.realmodel
def test_a_model_load_that_aborts_is_a_fail_with_its_cause_not_a_dead_doctor(tmp_path):
    proc = _doctor(tmp_path, EXCELLENCE_FAULTS="load_abort=1")
    assert proc.returncode > 0, (proc.returncode, proc.stdout, proc.stderr)  # exited, not killed by a signal
    line = next(ln for ln in proc.stdout.splitlines() if "the model load died" in ln)
    assert line.lstrip().startswith("[FAIL]") and "abort" in line
    assert "failed to initialize CUDA" in line  # the child's own last words
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.unit
def test_the_likely_cause_names_what_to_fix():
    assert "CPU-only" in likely_cause("", -1, "12.4", gpu_build=False)
    assert "driver CUDA 12.4" in likely_cause("ggml_cuda_init: no CUDA-capable device is detected", -1, "12.4", True)
    dll = likely_cause("FileNotFoundError: Could not find module 'cudart64_13.dll'", -1, "13.0", True,
                       platform="win32", cuda_path=r"C:\CUDA\v13.0")
    assert r"C:\CUDA\v13.0\bin\x64" in dll
    jit = likely_cause("ggml_cuda_compute_forward: PTX JIT compilation failed", -1, "12.4", True, platform="linux")
    assert "driver's CUDA version (12.4)" in jit and "-CudaTag" in jit
    assert "on the CPU" in likely_cause("", 0, None, gpu_build=False)


@pytest.mark.realmodel
def test_the_check_mode_bootstrap_runs_prints_doctors_line_and_its_status(tmp_path):
    from config.model_files import resolve_model_path

    cmd = [sys.executable, *PY_FLAGS, "-m", "workers.engines.llama_cpp_probe", "--check", "--model",
           str(resolve_model_path("smollm2")), "--n-gpu-layers", "0"]
    ok = subprocess.run(cmd, cwd=ROOT, env=cli_env(tmp_path / "q"), capture_output=True, text=True,
                        encoding="utf-8", timeout=300)
    assert ok.returncode == 0 and ok.stdout.startswith("[ OK ] token: CPU: loaded in"), ok.stdout + ok.stderr
    bad = subprocess.run(cmd, cwd=ROOT, env=cli_env(tmp_path / "q", EXCELLENCE_FAULTS="load_abort=1"),
                         capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert bad.returncode == 1 and bad.stdout.startswith("[FAIL] token: the model load died"), bad.stdout
