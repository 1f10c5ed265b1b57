"""A real token on the card before the run (issue 23, item 2): load the model in a child process with
the configured settings, decode one token, and report what llama.cpp used.

Why a child: when the GPU code cannot run (a CUDA wheel whose PTX the driver cannot JIT for a new card,
CUDA DLLs not found, a build that sees no device), ggml aborts the whole process. In ``doctor`` or
``run``'s preflight that used to kill the command itself (exit 134, no diagnosis); in a child it is a
FAIL line with the child's last stderr lines and the likely cause. ``llama_supports_gpu_offload`` alone
only counts devices, so it said OK on such machines.

    python -m workers.engines.llama_cpp_probe --model M.gguf --n-gpu-layers -1 --n-ctx 4096
    (the child: prints one JSON line: backend, system_info, load_s, first_token_s, vram_used_mib)
    python -m workers.engines.llama_cpp_probe --check --model M.gguf --n-gpu-layers -1
    (the parent, as bootstrap.ps1 -Cuda runs it: doctor's ``token`` line, exit 1 on FAIL)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from config.checks import FAIL, OK, Check
from config.schema import EvalConfig
from producer.host.exit_codes import exit_words

PROBE_TIMEOUT_S = 180.0  # a large model's first load on a GPU, JIT included
STDERR_LINES = 6


def _child(args: argparse.Namespace) -> int:
    """Load, decode one token, print the facts as one JSON line (runs in the child)."""
    from config.llama_cpp_import import import_llama_cpp  # lazy: the native library, in the child only
    from telemetry.nvml import GpuReader  # lazy: as above
    from workers.engines.cpu_quirks import apply_from_env  # lazy: as above
    from workers.engines.faults import maybe_abort_load  # lazy: as above
    from workers.engines.llama_cpp_engine import gpu_offload_supported  # lazy: as above

    apply_from_env()
    llama_cpp = import_llama_cpp()
    maybe_abort_load()  # fault drill: a load that aborts the process, as ggml does
    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {"model_path": args.model, "n_ctx": args.n_ctx, "n_gpu_layers": args.n_gpu_layers,
                              "verbose": False}
    if args.n_threads:
        kwargs["n_threads"] = kwargs["n_threads_batch"] = args.n_threads
    llm = llama_cpp.Llama(**kwargs)
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    llm.create_completion("The capital of France is", max_tokens=1, temperature=0.0)
    first_token_s = time.perf_counter() - t1
    info = llama_cpp.llama_print_system_info()
    info = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    reading = None
    with GpuReader() as gpu:
        reading = gpu.read()
    offload = gpu_offload_supported(llama_cpp)
    out = {"backend": "GPU offload" if offload and args.n_gpu_layers != 0 else "CPU",
           "system_info": " ".join(info.split())[:400], "load_s": round(load_s, 3),
           "first_token_s": round(first_token_s, 3),
           "vram_used_mib": round(reading.mem_used_mib) if reading and reading.mem_used_mib is not None else None}
    llm.close()
    print(json.dumps(out), flush=True)
    return 0


def _last_lines(text: str, n: int = STDERR_LINES) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def likely_cause(stderr: str, n_gpu_layers: int, driver_cuda: str | None, gpu_build: bool,
                 platform: str = sys.platform, cuda_path: str | None = None) -> str:
    """The most likely reason a load died, from what the child said and what the machine reports."""
    low = stderr.lower()
    if n_gpu_layers != 0 and not gpu_build:
        return "this llama-cpp-python build is CPU-only but n_gpu_layers is not 0"
    if "no cuda-capable device" in low or "no usable device" in low or "cuda error: no device" in low:
        return (f"the CUDA build sees no usable GPU (driver CUDA {driver_cuda or 'unknown'}): check "
                "nvidia-smi and CUDA_VISIBLE_DEVICES")
    if platform == "win32" and ("dll" in low or "cudart" in low or "cublas" in low):
        where = f"{cuda_path}\\bin\\x64 (CUDA 13) or {cuda_path}\\bin (CUDA 12)" if cuda_path else "CUDA's bin folder"
        return f"CUDA's DLLs were not found: put {where} on PATH (docs/windows.md)"
    if n_gpu_layers != 0:
        return (f"the driver's CUDA version ({driver_cuda or 'unknown'}) may be older than the wheel's CUDA tag "
                "(a new card needs the driver to JIT the wheel's PTX; minor-version compatibility does not "
                "cover it): update the driver, or reinstall with an older -CudaTag (docs/windows.md)")
    return "the model could not be loaded on the CPU: check the GGUF file and free memory"


def probe_check(cfg: EvalConfig, model_path: Path, gpu_build: bool, timeout_s: float = PROBE_TIMEOUT_S) -> Check:
    """``token`` check for a config: OK with the backend, first-token time and VRAM, or FAIL with the cause."""
    return token_check(model_path, cfg.n_gpu_layers, cfg.n_ctx, cfg.n_threads or 0, gpu_build, timeout_s)


def token_check(model_path: Path, n_gpu_layers: int, n_ctx: int, n_threads: int, gpu_build: bool,
                timeout_s: float = PROBE_TIMEOUT_S) -> Check:
    """The probe in a child (doctor, run's preflight, ``--check`` for bootstrap.ps1 -Cuda)."""
    cmd = [sys.executable, "-m", "workers.engines.llama_cpp_probe", "--model", str(model_path),
           "--n-gpu-layers", str(n_gpu_layers), "--n-ctx", str(min(n_ctx, 512)), "--n-threads", str(n_threads)]
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace",
                              timeout=timeout_s, env=env, cwd=root)
    except subprocess.TimeoutExpired:
        return Check("token", FAIL, f"loading {model_path.name} and decoding one token took over {timeout_s:.0f} s")
    if proc.returncode != 0:
        from telemetry.nvml import driver_cuda_version  # lazy: NVML only when a load died

        cause = likely_cause(proc.stderr, n_gpu_layers, driver_cuda_version(), gpu_build,
                             cuda_path=os.environ.get("CUDA_PATH"))
        said = _last_lines(proc.stderr)
        return Check("token", FAIL, f"the model load died ({exit_words(proc.returncode)}): {cause}"
                                    + (f"; its last lines: {said}" if said else ""))
    try:
        facts = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return Check("token", FAIL, f"the probe said nothing readable: {_last_lines(proc.stdout + proc.stderr)}")
    vram = f", VRAM in use {facts['vram_used_mib']} MiB" if facts.get("vram_used_mib") is not None else ""
    return Check("token", OK, f"{facts['backend']}: loaded in {facts['load_s']:.1f} s, first token in "
                              f"{facts['first_token_s'] * 1000:.0f} ms{vram}; llama.cpp: {facts['system_info'][:160]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Load a GGUF and decode one token (doctor's probe)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--n-gpu-layers", type=int, default=0)
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--n-threads", type=int, default=0)
    ap.add_argument("--check", action="store_true",
                    help="run the probe in a child and print doctor's line (exit 1 on FAIL): bootstrap.ps1 -Cuda")
    args = ap.parse_args(argv)
    if not args.check:
        return _child(args)
    from config.llama_cpp_import import import_llama_cpp  # lazy: the native library, for --check only
    from workers.engines.llama_cpp_engine import gpu_offload_supported  # lazy: as above

    check = token_check(Path(args.model), args.n_gpu_layers, max(args.n_ctx, 512), args.n_threads,
                        gpu_offload_supported(import_llama_cpp()))
    print(check.line())
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
