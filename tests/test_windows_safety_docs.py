"""The Windows docs say what a user needs before they hit it, and troubleshooting quotes the messages the
code really prints (issue 14, Docs): a renamed message or a dropped topic fails here."""

from __future__ import annotations

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.unit

# whitespace folded: Markdown wraps a quoted message anywhere
WINDOWS = " ".join((ROOT / "docs" / "windows.md").read_text(encoding="utf-8").split())
TROUBLE = " ".join((ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8").split())

# message quoted in troubleshooting.md -> the file that prints it
MESSAGES = {
    "llama-cpp-python's native library cannot load": "config/llama_cpp_import.py",
    "llama-cpp-python is not installed": "config/llama_cpp_import.py",
    "engine cannot start: ": "workers/inference.py",
    "is a CPU-only build (no GPU offload) although -Cuda was asked for": "tools/bootstrap.ps1",
    "is installed but cannot load": "tools/bootstrap.ps1",
    "not downloaded yet (": "producer/checks/preflight_data.py",
    "and the download ": "producer/checks/preflight_data.py",
    "pyarrow cannot be imported (": "producer/checks/preflight_data.py",
    "is on a network drive": "producer/checks/preflight.py",
    "is inside OneDrive": "producer/checks/preflight.py",
    "this llama-cpp-python build is CPU-only but n_gpu_layers is": "workers/engines/llama_cpp_hooks.py",
    "the model load died (": "workers/engines/llama_cpp_probe.py",
    "workers died ": "workers/pool.py",
}

# topic -> words windows.md must contain for it
TOPICS = {
    "CUDA runtime DLLs": ["cudart64_12.dll", "cublas64_12.dll", "cublasLt64_12.dll", "CUDA_PATH"],
    "minimum driver": ["551.61", "580", "nvidia-smi"],
    "RTX 50-series": ["sm_120", "12.8", "Visual Studio 2022", "Desktop development with C++", "PTX",
                      "no kernel image is available"],
    "ZIP downloads": ["Unblock-File"],
    "Defender exclusions": ["Add-MpPreference", "$PWD\\.venv", "EXCELLENCE_QUEUE_DIR"],
    "Controlled Folder Access": ["Controlled folder access", "WinError 5"],
    "Dev Drive": ["Dev Drive"],
    "OneDrive and network folders": ["OneDrive", "network", "WAL"],
    "Sysmem fallback": ["CUDA - Sysmem Fallback Policy", "Prefer No Sysmem Fallback", "tokens/s", "VRAM 15.9/16.0 GiB"],
    "long paths": ["LongPathsEnabled"],
    "bug report": ["doctor", "--report", "doctor-report.schema.json"],
    "Visual Studio before the CUDA Toolkit": ["first, then the CUDA Toolkit", "No CUDA toolset found",
                                              "for `-FromSource -Cuda` **before** the CUDA Toolkit"],
    "Ollama after winget": ["new terminal after `winget install Ollama.Ollama`", "port (11434) is taken"],
}


@pytest.mark.parametrize("message", list(MESSAGES))
def test_troubleshooting_quotes_a_real_message(message: str) -> None:
    assert message in TROUBLE, f"troubleshooting.md does not explain {message!r}"
    source = (ROOT / MESSAGES[message]).read_text(encoding="utf-8")
    assert message in source, f"{MESSAGES[message]} no longer prints {message!r}: update troubleshooting.md"


@pytest.mark.parametrize("topic", list(TOPICS))
def test_windows_page_covers(topic: str) -> None:
    missing = [word for word in TOPICS[topic] if word not in WINDOWS]
    assert not missing, f"docs/windows.md, {topic}: missing {missing}"


def test_readme_opens_a_new_terminal_after_winget_and_leaves_the_tray_app_alone() -> None:
    """Issue 23.6: ``ollama`` is not on the old terminal's PATH, and ``ollama serve`` fails while the tray
    app holds the port, so the README no longer types it right after the install."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("winget install Ollama.Ollama"):].split("```", 1)[0]
    assert "ollama" not in block.replace("winget install Ollama.Ollama", "")
    after = " ".join(readme[readme.index("winget install Ollama.Ollama"):].split())
    assert "open a **new terminal**" in after and "do not run `ollama serve` while it runs" in after


def test_engines_page_gives_the_powershell_form_of_ollama_num_parallel() -> None:
    engines = " ".join((ROOT / "docs" / "engines.md").read_text(encoding="utf-8").split())
    assert "`$env:OLLAMA_NUM_PARALLEL = 4`" in engines
