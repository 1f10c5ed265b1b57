"""Work around CPUs that advertise instructions the hypervisor does not enable.

Why: on some virtual machines the CPU reports AMX, llama.cpp repacks the weights for its AMX kernels
("extra buffer types") and the first decode dies with SIGILL (illegal instruction: ``tileloadd``).
llama-cpp-python does not expose llama.cpp's ``use_extra_bufts`` switch, so ``disable_cpu_repack``
patches the default model parameters before a model is loaded. Opt in with the environment variable
``EXCELLENCE_NO_CPU_REPACK=1`` (the test suite and benchmarks set it); laptops with a real GPU never
need it. Prompt reading on the CPU is slower without repacking; answers are unchanged.
"""

from __future__ import annotations

import os

from config.llama_cpp_import import import_llama_cpp
from workers.engines.base import PermanentEngineError

ENV_NO_CPU_REPACK = "EXCELLENCE_NO_CPU_REPACK"


def disable_cpu_repack() -> bool:
    """Patch llama-cpp-python so models load with ``use_extra_bufts = False``; True if patched (idempotent)."""
    try:
        lc = import_llama_cpp().llama_cpp  # the low-level module whose defaults Llama() reads
    except PermanentEngineError:  # not installed or cannot load: nothing to patch
        return False
    if getattr(lc.llama_model_default_params, "_no_repack", False):
        return True
    original = lc.llama_model_default_params

    def params():  # noqa: ANN202 - ctypes struct
        p = original()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    params._no_repack = True  # type: ignore[attr-defined]
    lc.llama_model_default_params = params
    return True


def apply_from_env() -> bool:
    """``disable_cpu_repack()`` when ``EXCELLENCE_NO_CPU_REPACK`` is 1/true/yes."""
    if os.environ.get(ENV_NO_CPU_REPACK, "").strip().lower() in ("1", "true", "yes"):
        return disable_cpu_repack()
    return False
