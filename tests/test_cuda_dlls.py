"""CUDA 13 keeps its runtime DLLs in ``%CUDA_PATH%\\bin\\x64`` (issue 23, item 4): the folders that hold
them go on the DLL search path before llama-cpp-python is imported, on Windows only.

The folder choice is a pure function, checked over fake CUDA_PATH trees; the Windows branch runs on the
Windows CI runner and here with the platform named, the Linux behaviour (nothing changes) here.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

from config.cuda_dlls import add_cuda_dll_dirs, cuda_dll_dirs, path_with_dirs
from tests.support.paths import ROOT

pytestmark = pytest.mark.unit
PACKAGES = ("config", "producer", "workers", "scoring", "telemetry")


def _tree(root: Path, files: list[str]) -> Path:
    """A fake toolkit: each path (``/``-separated) under ``root`` as an empty file."""
    for name in files:
        path = root.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root


def test_cuda_13_runtime_is_found_in_bin_x64(tmp_path: Path) -> None:
    cuda = _tree(tmp_path / "v13.0", ["bin/nvcc.exe", "bin/x64/cudart64_13.dll", "bin/x64/cublas64_13.dll"])
    assert cuda_dll_dirs(cuda) == [cuda / "bin" / "x64"]


def test_cuda_12_runtime_is_found_in_bin(tmp_path: Path) -> None:
    cuda = _tree(tmp_path / "v12.4", ["bin/nvcc.exe", "bin/cudart64_12.dll", "bin/cublas64_12.dll"])
    assert cuda_dll_dirs(cuda) == [cuda / "bin"]


def test_both_folders_with_a_runtime_come_x64_first(tmp_path: Path) -> None:
    cuda = _tree(tmp_path / "v13.2", ["bin/cudart64_13.dll", "bin/x64/cudart64_13.dll"])
    assert cuda_dll_dirs(cuda) == [cuda / "bin" / "x64", cuda / "bin"]


def test_no_runtime_no_folder(tmp_path: Path) -> None:
    assert cuda_dll_dirs(_tree(tmp_path / "empty", ["bin/nvcc.exe", "bin/x64/readme.txt"])) == []
    assert cuda_dll_dirs(tmp_path / "missing") == []


def test_path_gets_the_folders_in_front_once(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    old = os.pathsep.join(["/usr/bin", str(b), "/bin"])
    new = path_with_dirs(old, [a, b])
    assert new.split(os.pathsep) == [str(a), str(b), "/usr/bin", "/bin"]
    assert path_with_dirs(new, [a, b]) == new
    assert path_with_dirs("", [a]) == str(a)


@pytest.mark.skipif(sys.platform == "win32", reason="the Linux/macOS behaviour")
def test_off_windows_nothing_changes(tmp_path: Path) -> None:
    cuda = _tree(tmp_path / "v13.0", ["bin/x64/cudart64_13.dll"])
    env = {"CUDA_PATH": str(cuda), "PATH": "/usr/bin"}
    assert add_cuda_dll_dirs(env) == []
    assert env == {"CUDA_PATH": str(cuda), "PATH": "/usr/bin"}


def test_on_windows_the_runtime_folder_goes_on_the_search_path(tmp_path: Path) -> None:
    """The Windows branch, walked here with the platform named and os.add_dll_directory recorded (on
    the Windows CI runner the real call is made)."""
    cuda = _tree(tmp_path / "v13.0", ["bin/nvcc.exe", "bin/x64/cudart64_13.dll"])
    system = os.path.join(os.sep, "usr", "bin") if sys.platform != "win32" else "C:" + os.sep + "Windows"
    env = {"CUDA_PATH": str(cuda), "PATH": system}
    added: list[str] = []
    windows = {"platform": "win32", "add_dir": added.append} if sys.platform != "win32" else {}
    assert add_cuda_dll_dirs(env, **windows) == [cuda / "bin" / "x64"]
    assert env["PATH"].split(os.pathsep) == [str(cuda / "bin" / "x64"), system]
    assert added in ([str(cuda / "bin" / "x64")], [])  # []: on Windows the real call was made instead
    assert add_cuda_dll_dirs({"PATH": "x"}, **windows) == []  # CUDA_PATH unset: a CPU build needs none


def _imports_of_llama_cpp() -> list[tuple[str, ast.Import]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import) and any(a.name == "llama_cpp" for a in node.names):
                    found.append((path.relative_to(ROOT).as_posix(), node))
    return found


def test_the_one_import_of_llama_cpp_adds_the_cuda_folders_first() -> None:
    """The project imports the llama_cpp package in one place (its submodules are imported only once
    that has run), and there the CUDA folders are added before the import."""
    imports = _imports_of_llama_cpp()
    assert [path for path, _ in imports] == ["config/llama_cpp_import.py"]
    source = (ROOT / "config" / "llama_cpp_import.py").read_text(encoding="utf-8")
    func = next(n for n in ast.walk(ast.parse(source))
                if isinstance(n, ast.FunctionDef) and n.name == "import_llama_cpp")
    calls = [n.lineno for n in ast.walk(func) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name) and n.func.id == "add_cuda_dll_dirs"]
    assert calls and min(calls) < imports[0][1].lineno
