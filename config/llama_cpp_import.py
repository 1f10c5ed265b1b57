"""The one import of llama-cpp-python.

Why below workers: the trial manifest (producer's contract layer) counts prompt tokens with a GGUF's
vocabulary (``config.token_count``), and preflight/doctor check the build; all of them and the worker's
engine must fail the same way, with one line that says the fix.
"""

from __future__ import annotations

import warnings
from typing import Any

from config.cuda_dlls import add_cuda_dll_dirs
from config.engines import PermanentEngineError

NOT_INSTALLED_FIX = "pip install \"llama-cpp-python>=0.3.7\" (or run tools/bootstrap.ps1 / tools/bootstrap.sh)"
LOAD_FIX = ("a CUDA build needs a recent NVIDIA driver and the CUDA runtime DLLs (cudart, cublas) of its CUDA "
            "version on PATH; install them, or go back to the CPU build with tools/bootstrap.ps1 -LlamaCpp -Recreate "
            "(see docs/troubleshooting.md)")


def import_llama_cpp() -> Any:
    """Import llama-cpp-python, turning any failure into a ``PermanentEngineError`` (one line: reason and fix).

    Why every exception: on Windows a native library that cannot load raises ``RuntimeError("Failed to
    load shared library ...llama.dll")`` (or OSError), not ImportError; the worker must stop the run with
    that reason instead of retrying forever. Its ``_utils`` opens os.devnull without an encoding, which
    ``-W error::EncodingWarning`` would turn into an error, so that warning is ignored here. CUDA 13's
    runtime folder (``bin\\x64``) goes on the DLL search path first (``config.cuda_dlls``)."""
    add_cuda_dll_dirs()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EncodingWarning)
            import llama_cpp
    except ImportError as exc:
        if getattr(exc, "name", None) == "llama_cpp":
            raise PermanentEngineError(f"llama-cpp-python is not installed: {NOT_INSTALLED_FIX}") from None
        reason = " ".join(str(exc).split())
        raise PermanentEngineError(f"llama-cpp-python cannot be imported ({reason}): {NOT_INSTALLED_FIX}") from None
    except Exception as exc:  # noqa: BLE001 - RuntimeError/OSError from ctypes: the library cannot load
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise PermanentEngineError(f"llama-cpp-python's native library cannot load ({reason}): {LOAD_FIX}") from None
    return llama_cpp
