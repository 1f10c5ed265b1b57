"""Where Windows finds the CUDA runtime DLLs a CUDA build of llama-cpp-python needs (issue 23, item 4).

Why: CUDA 12 installs ``cudart64_12.dll`` and ``cublas64_12.dll`` in ``%CUDA_PATH%\\bin``, CUDA 13 in
``%CUDA_PATH%\\bin\\x64``. llama-cpp-python adds only ``bin`` to the DLL directories, and loads its
library with ``winmode=0``, whose search for dependent DLLs reads ``PATH``, not those directories. So
before the one import (``config.llama_cpp_import``, and the bootstrap's check) the folders that really
hold the runtime go on both: ``os.add_dll_directory`` and the front of this process's ``PATH``.
Standard library only: the bootstrap imports it before the project's dependencies are installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

# CUDA 13 first (bin\x64), then CUDA 12 and older (bin).
CANDIDATE_DIRS = (("bin", "x64"), ("bin",))
RUNTIME_GLOB = "cudart64_*.dll"
_added: dict[str, Any] = {}  # folder -> add_dll_directory's handle: kept, so nothing removes it; each added once


def cuda_dll_dirs(cuda_path: Path) -> list[Path]:
    """The folders under ``cuda_path`` that hold a CUDA runtime DLL, ``bin\\x64`` before ``bin``."""
    found = []
    for parts in CANDIDATE_DIRS:
        folder = cuda_path.joinpath(*parts)
        if folder.is_dir() and any(folder.glob(RUNTIME_GLOB)):
            found.append(folder)
    return found


def path_with_dirs(path_value: str, dirs: list[Path]) -> str:
    """``PATH`` with ``dirs`` in front, in order, each once (a folder already on it moves to the front)."""
    front = [str(d) for d in dirs]
    keys = {os.path.normcase(d) for d in front}
    rest = [p for p in path_value.split(os.pathsep) if p and os.path.normcase(p) not in keys]
    return os.pathsep.join(front + rest)


def add_cuda_dll_dirs(environ: MutableMapping[str, str] | None = None, platform: str = sys.platform,
                      add_dir: Callable[[str], Any] | None = None) -> list[Path]:
    """On Windows with ``CUDA_PATH`` set, put its runtime folders on the DLL search path; returns them.

    A no-op elsewhere (Linux finds libcudart through the loader's own paths) and when CUDA_PATH is
    unset or holds no runtime DLL (a CPU build needs none). ``platform`` and ``add_dir`` (default
    ``os.add_dll_directory``) let a Linux test walk the Windows branch."""
    env = os.environ if environ is None else environ
    add_dir = add_dir or getattr(os, "add_dll_directory", None)
    cuda_path = env.get("CUDA_PATH", "")
    if platform != "win32" or add_dir is None or not cuda_path:
        return []
    dirs = cuda_dll_dirs(Path(cuda_path))
    for folder in dirs:
        if str(folder) not in _added:
            _added[str(folder)] = add_dir(str(folder))
    if dirs:
        env["PATH"] = path_with_dirs(env.get("PATH", ""), dirs)
    return dirs
