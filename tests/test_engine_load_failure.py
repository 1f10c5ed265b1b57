"""A llama.cpp library that cannot load (issue 14.2) stops the run with its reason, and doctor says FAIL.

On Windows, a CUDA wheel without the CUDA runtime DLLs raises ``RuntimeError("Failed to load shared
library ...llama.dll")`` at ``import llama_cpp``, not ImportError. A stub package of that name on
PYTHONPATH raises exactly that; everything else is real: the CLI, the spawn worker pool, SQLite.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.paths import ROOT
from tests.support.queue_runs import count_state, producer, run_id_of, write_config

DLL = r"C:\work\excellence\.venv\Lib\site-packages\llama_cpp\lib\llama.dll"
MESSAGE = f"Failed to load shared library '{DLL}': Could not find module '{DLL}' (or one of its dependencies)."


def broken_llama_cpp(tmp_path: Path) -> dict[str, str]:
    stub = tmp_path / "stub" / "llama_cpp"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(f"raise RuntimeError({MESSAGE!r})\n", encoding="utf-8")
    return {"PYTHONPATH": f"{stub.parent}{os.pathsep}{ROOT}"}


def test_run_stops_with_the_reason_instead_of_requeueing_forever(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    cfg = write_config(tmp_path, short_prompts=True)
    out = producer(["run", "--config", str(cfg), "--workers", "1", "--no-preflight"], queue, timeout=120,
                   **broken_llama_cpp(tmp_path))
    assert out.returncode == 1, out.stdout + out.stderr
    run_id = run_id_of(queue)
    stopped = [line for line in out.stdout.splitlines() if line.startswith(f"run {run_id} stopped: ")]
    assert stopped == [f"run {run_id} stopped: engine cannot start: llama-cpp-python's native library cannot load "
                       f"({MESSAGE}): a CUDA build needs a recent NVIDIA driver and the CUDA runtime DLLs (cudart, "
                       "cublas) of its CUDA version on PATH; install them, or go back to the CPU build with "
                       "tools/bootstrap.ps1 -LlamaCpp -Recreate (see docs/troubleshooting.md)"]
    assert f"python -m producer run --resume {run_id}" in out.stdout
    assert out.stderr.count("Unhandled exception") == 0 and "Traceback" not in out.stderr
    assert count_state(queue, run_id, "done") == 0 and count_state(queue, run_id, "failed") == 0  # nothing lost
    st = json.loads(producer(["status", "--json"], queue).stdout)
    assert st["state"] == "stopped" and "Failed to load shared library" in st["stop_reason"]


def test_doctor_and_preflight_fail_on_a_library_that_cannot_load(tmp_path: Path) -> None:
    queue = tmp_path / "queue"
    cfg = write_config(tmp_path, short_prompts=True)
    env = broken_llama_cpp(tmp_path)
    doc = producer(["doctor", "--config", str(cfg)], queue, timeout=120, **env)
    assert doc.returncode == 1, doc.stdout + doc.stderr
    engine = [line for line in doc.stdout.splitlines() if line.startswith("[") and "] engine:" in line]
    assert engine == [f"[FAIL] engine: llama-cpp-python's native library cannot load ({MESSAGE}): a CUDA build "
                      "needs a recent NVIDIA driver and the CUDA runtime DLLs (cudart, cublas) of its CUDA version on "
                      "PATH; install them, or go back to the CPU build with tools/bootstrap.ps1 -LlamaCpp -Recreate "
                      "(see docs/troubleshooting.md)"]
    assert doc.stdout.rstrip().endswith("failed") and "NOT ready:" in doc.stdout
    run = producer(["run", "--config", str(cfg), "--workers", "1"], queue, timeout=120, **env)
    assert run.returncode == 1
    assert run.stderr.strip().startswith("error: preflight failed: engine: llama-cpp-python's native library cannot load")
    assert "\n" not in run.stderr.strip()


def test_a_missing_package_is_a_permanent_error_with_the_install_command(tmp_path: Path) -> None:
    """ImportError of llama_cpp itself: "not installed" with the pip command (no traceback, FAIL)."""
    stub = tmp_path / "stub" / "llama_cpp"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('No module named llama_cpp', name='llama_cpp')\n",
                                      encoding="utf-8")
    queue = tmp_path / "queue"
    doc = producer(["doctor", "--config", str(write_config(tmp_path))], queue, timeout=120,
                   PYTHONPATH=f"{stub.parent}{os.pathsep}{ROOT}")
    assert doc.returncode == 1
    assert "[FAIL] engine: llama-cpp-python is not installed: pip install \"llama-cpp-python>=0.3.7\"" in doc.stdout
