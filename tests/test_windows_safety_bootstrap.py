"""tools/bootstrap.ps1 never ends "Done" on the wrong llama-cpp-python build (issue 14.5).

PowerShell and the CUDA wheel index cannot be reached here, so the script is read through tree-sitter's
PowerShell grammar: every pip call that installs llama-cpp-python carries the version floor of setup.cfg
and either ``--only-binary`` (a wheel is meant: never compile PyPI's source release) or the full rebuild
flags of ``-FromSource``; ``-Cuda`` fails without GPU offload; the CUDA tags are the ones llama-cpp-python
builds Windows wheels for (its build-wheels-cuda workflow: 11.8, 12.4, 12.5, 13.0, 13.2).
"""

from __future__ import annotations

import configparser
import re

import pytest

from tests.support.paths import ROOT
from tests.support.powershell import node_text, ps_parser, walk

pytestmark = pytest.mark.unit

SCRIPT = ROOT / "tools" / "bootstrap.ps1"
WINDOWS_CUDA_TAGS = {"cu118", "cu124", "cu125", "cu130", "cu132"}
STALE_TAGS = ("cu121", "cu122", "cu123")


def _source() -> bytes:
    return SCRIPT.read_bytes()


def _assignments(source: bytes) -> dict[str, str]:
    """``$Name = "value"`` at the top of the script -> {"$Name": "value"} (strings only)."""
    out = {}
    for match in re.finditer(rb'^\$(\w+) = "([^"]*)"\s*$', source, re.MULTILINE):
        out["$" + match.group(1).decode()] = match.group(2).decode()
    return out


def _expand(text: str, values: dict[str, str]) -> str:
    for _ in range(3):
        text = re.sub(r"\$(\w+)", lambda m: values.get("$" + m.group(1), m.group(0)), text)
    return text


def pip_calls() -> list[list[str]]:
    """The literal arguments of each ``Invoke-Checked $VenvPython @(... "pip", "install" ...)`` call,
    with the script's string constants expanded."""
    source = _source()
    values = _assignments(source)
    calls = []
    for node in walk(ps_parser().parse(source).root_node):
        if node.type != "command":
            continue
        name = next((c for c in node.children if c.type == "command_name"), None)
        if name is None or node_text(source, name) != "Invoke-Checked":
            continue
        argv = []
        for sub in walk(node):
            if sub.type in ("expandable_string_literal", "verbatim_string_literal"):
                argv.append(_expand(node_text(source, sub)[1:-1], values))
            elif sub.type == "variable" and sub.parent.type != "expandable_string_literal":
                argv.append(_expand(node_text(source, sub), values))
        if "pip" in argv and "install" in argv:
            calls.append(argv)
    return calls


def setup_cfg_floor() -> str:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    line = next(x for x in cfg["options.extras_require"]["llamacpp"].split("\n") if "llama-cpp-python" in x)
    return line.split(">=")[1].strip()


def test_every_llama_cpp_install_pins_the_floor_and_the_build_kind() -> None:
    floor = setup_cfg_floor()
    llama_calls = [argv for argv in pip_calls() if any(a.startswith("llama-cpp-python") for a in argv)]
    assert len(llama_calls) >= 3  # CPU/CUDA wheel, CUDA swap, source rebuild
    for argv in llama_calls:
        specs = [a for i, a in enumerate(argv) if a.startswith("llama-cpp-python")
                 and argv[i - 1] not in ("--only-binary", "--no-binary")]
        assert specs and all(s.endswith(f">={floor}") for s in specs), argv
        assert "--only-binary" in argv or "--no-binary" in argv, argv
        if "--only-binary" in argv:
            assert argv[argv.index("--only-binary") + 1] == "llama-cpp-python"


def test_from_source_really_rebuilds() -> None:
    rebuild = [argv for argv in pip_calls() if "--no-binary" in argv and "--force-reinstall" in argv]
    assert rebuild, "no pip call rebuilds llama-cpp-python"
    assert {"--force-reinstall", "--no-cache-dir", "--no-binary"} <= set(rebuild[0])
    assert rebuild[0][rebuild[0].index("--no-binary") + 1] == "llama-cpp-python"


def test_cuda_swap_does_not_reuse_a_cached_cpu_wheel() -> None:
    swap = [argv for argv in pip_calls() if "--index-url" in argv]
    assert swap and {"--force-reinstall", "--no-cache-dir", "--only-binary"} <= set(swap[0])


def test_cuda_tags_are_the_windows_wheels_that_exist() -> None:
    text = _source().decode("utf-8")
    tags = re.search(r'\[ValidateSet\(([^)]*)\)\]\s*\[string\]\$CudaTag = "(cu\d+)"', text)
    assert tags, "CudaTag must be limited to the tags that exist"
    assert {t.strip().strip('"') for t in tags.group(1).split(",")} == WINDOWS_CUDA_TAGS
    assert tags.group(2) in WINDOWS_CUDA_TAGS
    for stale in STALE_TAGS:
        assert stale not in text.replace("12.1-12.3", "")
    docs = (ROOT / "docs" / "windows.md").read_text(encoding="utf-8")
    assert not any(stale in docs for stale in STALE_TAGS), "docs/windows.md names a CUDA tag with no Windows wheel"


def test_cuda_fails_without_gpu_offload() -> None:
    text = _source().decode("utf-8")
    check = text[text.index('Write-Step "Checking the installation"'):]
    assert 'if ($Cuda -and -not ($status -like "ok * offload=True"))' in check
    assert "throw" in check.split('offload=True"))', 1)[1].split("}", 1)[0]
    assert "$exitCode = 1" in text and "if ($exitCode -ne 0) { exit $exitCode }" in text
    assert text.index("if ($exitCode -ne 0)") < text.index('Write-Host "Done. Next:"')


def _functions(source: bytes) -> dict[str, object]:
    """Function name -> its function_statement node."""
    out = {}
    for node in walk(ps_parser().parse(source).root_node):
        if node.type == "function_statement":
            name = next(c for c in node.children if c.type == "function_name")
            out[node_text(source, name)] = node
    return out


def _ancestors(node):
    node = node.parent
    while node is not None:
        yield node
        node = node.parent


def unguarded_native_calls(source: bytes) -> list[str]:
    """Native calls (``& $exe ...``) not guarded against 5.1's NativeCommandError (issue 23.4): each must
    run in a ``try`` of a function that sets ``$ErrorActionPreference = "Continue"`` first and whose
    ``finally`` puts the saved preference back."""
    found = []
    for node in walk(ps_parser().parse(source).root_node):
        if node.type != "command" or not any(c.type == "command_invokation_operator" for c in node.children):
            continue
        ups = list(_ancestors(node))
        func = next((a for a in ups if a.type == "function_statement"), None)
        tries = [a for a in ups if a.type == "try_statement"]
        body = node_text(source, func) if func is not None else ""
        guarded = (func is not None and tries and '$ErrorActionPreference = "Continue"' in body
                   and body.index('$ErrorActionPreference = "Continue"') < node_text(source, func).index(node_text(source, tries[0]))
                   and any(c.type == "finally_clause" and "$ErrorActionPreference = $saved" in node_text(source, c)
                           for t in tries for c in t.children))
        if not guarded:
            found.append(f"line {node.start_point[0] + 1}: {node_text(source, node)[:60]}")
    return found


def test_every_native_call_is_guarded_against_native_command_error() -> None:
    problems = unguarded_native_calls(_source())
    assert not problems, "native calls that pip's stderr would end under 5.1 + 2>&1:\n" + "\n".join(problems)
    assert len(pip_calls()) >= 5  # the pip installs all go through the guarded Invoke-Checked


def test_the_guard_check_catches_a_bare_native_call() -> None:
    bare = b'function F([string]$Exe) {\n    & $Exe --version\n    if ($LASTEXITCODE -ne 0) { throw "x" }\n}\n'
    loose = b'$v = & $Exe --version\n'
    guarded = (b'function F([string]$Exe) {\n    $saved = $ErrorActionPreference\n'
               b'    $ErrorActionPreference = "Continue"\n    try {\n        & $Exe --version\n'
               b'    } finally {\n        $ErrorActionPreference = $saved\n    }\n}\n')
    assert unguarded_native_calls(bare) and unguarded_native_calls(loose)
    assert unguarded_native_calls(guarded) == []


def test_cuda_reinstalls_when_the_recorded_build_differs() -> None:
    """Re-running ``-Cuda -CudaTag cu132`` after a cu124 install replaces the wheel (issue 23.4): the
    installed build is recorded in .venv and compared with the asked-for tag."""
    source = _source()
    text = source.decode("utf-8")
    funcs = _functions(source)
    assert '$BuildFile = Join-Path $Root ".venv\\llama-cpp-python-build.txt"' in text
    reason = node_text(source, funcs["Get-ReinstallReason"])
    assert 'if ($Installed -eq $Wanted) { return "" }' in reason
    assert 'return "it is the $Installed build, not $Wanted"' in reason
    assert 'if (-not $Installed) { return "its build is not recorded' in reason  # unknown: replaced
    assert 'if (-not ($Status -like "ok * offload=True"))' in reason  # the old rule stays
    wheel = text[text.index("} elseif ($needsLlama) {"):text.index('Write-Step "Installing the project')]
    decide = "$why = Get-ReinstallReason (Get-InstalledBuild) $CudaTag $TagNamed (Get-LlamaStatus $VenvPython)"
    assert decide in wheel
    swap = wheel[wheel.index("if ($why) {"):]
    assert '"--index-url", $index' in swap and "Set-InstalledBuild $CudaTag" in swap
    assert "if (-not $hadLlama) { Set-InstalledBuild $tag }" in wheel  # a fresh install is recorded as it is
    source_build = text[text.index("if ($needsLlama -and $FromSource) {"):text.index("} elseif ($needsLlama) {")]
    assert 'Set-InstalledBuild "source"' in source_build
    assert '$TagNamed = $PSBoundParameters.ContainsKey("CudaTag")' in text


def test_the_llama_probe_puts_the_cuda_folders_first() -> None:
    code = node_text(_source(), _functions(_source())["Get-LlamaStatus"])
    assert code.index("from config.cuda_dlls import add_cuda_dll_dirs`n    add_cuda_dll_dirs()") < code.index(
        "import llama_cpp`n")


def test_cuda_hints_name_bin_x64_not_only_bin() -> None:
    text = _source().decode("utf-8")
    hint = text[text.index('if ($Cuda) { $hint = '):].split("\n", 1)[0]
    assert "%CUDA_PATH%\\bin\\x64" in hint and "cudart64_13.dll" in hint and "where.exe" not in hint
    for doc in ("docs/windows.md", "docs/troubleshooting.md"):
        page = (ROOT / doc).read_text(encoding="utf-8")
        assert "where.exe cudart64_12.dll" not in page, doc
        assert "bin\\x64" in page, doc


def test_cuda_decodes_a_real_token_with_doctors_probe() -> None:
    """Issue 23, item 2: ``-Cuda`` runs the same probe as doctor (a child loads the model with every layer
    on the GPU and decodes one token) after the offload check, and fails the bootstrap on FAIL."""
    source = _source()
    text = source.decode("utf-8")
    funcs = _functions(source)
    assert "Invoke-TokenProbe" in funcs
    body = node_text(source, funcs["Invoke-TokenProbe"])
    assert "-m workers.engines.llama_cpp_probe --check" in body and "--n-gpu-layers -1" in body
    check = text[text.index('Write-Step "Checking the installation"'):]
    assert check.index("offload=True\"))") < check.index("Invoke-TokenProbe $VenvPython")
    after = check.split("Invoke-TokenProbe $VenvPython", 1)[1].split("}", 2)
    assert "if ($probe.Failed)" in after[0] + after[1] and "throw" in after[0] + after[1]
