<#
.SYNOPSIS
    Set up the project on Windows: a .venv with Python 3.11+ and the project installed editable.

.DESCRIPTION
    Creates .venv with the py launcher (tries 3.12, then 3.11, then 3.13, then python on PATH),
    upgrades pip and installs the project with the chosen extras. Idempotent: a second run reuses
    .venv. Stops at the first failing step with a non-zero exit code. Runs under Windows PowerShell
    5.1 (powershell.exe, in every Windows 11) and PowerShell 7 (pwsh) alike.

    Runtime only (Ollama, llama-server, Fireworks):   powershell -ExecutionPolicy Bypass -File tools\bootstrap.ps1
    Embedded demo (llama.cpp on the CPU + SmolLM2):    ... -File tools\bootstrap.ps1 -Demo
    Tests and tools:                                   ... -File tools\bootstrap.ps1 -Dev
    In-process llama.cpp on the GPU (CUDA wheel):      ... -File tools\bootstrap.ps1 -LlamaCpp -Cuda

    llama-cpp-python (needed by -Demo, -Dev, -LlamaCpp) comes from its project's prebuilt wheel
    index, because compiling it on Windows needs Visual Studio 2022 (C++ workload) and CMake:
    https://abetlen.github.io/llama-cpp-python/whl/cpu, or with -Cuda
    https://abetlen.github.io/llama-cpp-python/whl/<CudaTag>. Windows CUDA wheels exist for cu118,
    cu124, cu125, cu130 and cu132 (llama-cpp-python's build-wheels-cuda workflow builds no Windows
    wheel for CUDA 12.1-12.3); they are tagged py3 (any Python 3), and need the CUDA runtime DLLs of
    the same major version (install the CUDA Toolkit: the folder under CUDA_PATH that holds them,
    bin for CUDA 12, bin\x64 for CUDA 13, goes on the DLL search path) and a driver for it.
    The build installed is recorded in .venv\llama-cpp-python-build.txt (cpu, a CUDA tag, or source):
    -Cuda replaces any other build with the -CudaTag wheel (a source build stays unless -CudaTag is
    given). A run without -Cuda keeps what is installed. Only wheels are accepted from there (--only-binary), with the same version floor as setup.cfg,
    so pip never falls back to compiling PyPI's source release. With -Cuda the script exits 1 unless
    the installed build can offload to the GPU. -FromSource really rebuilds (--force-reinstall
    --no-cache-dir --no-binary); with -Cuda it sets CMAKE_ARGS=-DGGML_CUDA=on unless CMAKE_ARGS is set.
    RTX 50-series (Blackwell, sm_120): the prebuilt CUDA wheels carry PTX the driver compiles on the
    first load; a source build needs the CUDA 12.8+ toolkit (docs/windows.md).

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File tools\bootstrap.ps1 -Demo
#>
[CmdletBinding()]
param(
    [switch]$Recreate,
    [switch]$LlamaCpp,
    [switch]$Cuda,
    [ValidateSet("cu118", "cu124", "cu125", "cu130", "cu132")]
    [string]$CudaTag = "cu124",
    [switch]$FromSource,
    [switch]$Demo,
    [switch]$Dev,
    [string]$Python = ""
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

# Keep in step with setup.cfg's llamacpp/demo extras (tests/test_windows_safety_ps51.py checks it).
$LlamaFloor = "0.3.7"
$LlamaSpec = "llama-cpp-python>=$LlamaFloor"
$LlamaServerSpec = "llama-cpp-python[server]>=$LlamaFloor"
$WheelIndex = "https://abetlen.github.io/llama-cpp-python/whl"
$TagNamed = $PSBoundParameters.ContainsKey("CudaTag")

$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root
$BuildFile = Join-Path $Root ".venv\llama-cpp-python-build.txt"
# Process-wide: put back at the end, so running the script in the current session changes nothing.
$SavedEnv = @{}
foreach ($name in @("PIP_NO_INPUT", "PIP_DISABLE_PIP_VERSION_CHECK", "PYTHONUTF8", "CMAKE_ARGS")) {
    $SavedEnv[$name] = [Environment]::GetEnvironmentVariable($name, "Process")
}
$env:PIP_NO_INPUT = "1"
$env:PIP_DISABLE_PIP_VERSION_CHECK = "1"
$env:PYTHONUTF8 = "1"

function Write-Step([string]$Message) {
    Write-Host ""
    Write-Host "==> $Message" -ForegroundColor Cyan
}

function Invoke-Checked([string]$Exe, [string[]]$Arguments) {
    # Only the exit code decides. Windows PowerShell 5.1 turns each stderr line of a native command into
    # an error record when the output is redirected (2>&1 | Tee-Object log.txt); under "Stop" pip's
    # first warning would end the script. So the call runs under "Continue", as the probes below do.
    $saved = $ErrorActionPreference
    $ErrorActionPreference = "Continue"
    try {
        & $Exe @Arguments
        $code = $LASTEXITCODE
    } finally {
        $ErrorActionPreference = $saved
    }
    if ($code -ne 0) {
        throw "command failed (exit $code): $Exe $($Arguments -join ' ')"
    }
}

function Get-PythonVersion([string]$Exe, [string[]]$Prefix) {
    $saved = $ErrorActionPreference
    $ErrorActionPreference = "Continue"  # 5.1 turns a native command's stderr into errors
    try {
        return [string](& $Exe @Prefix --version 2>$null)
    } finally {
        $ErrorActionPreference = $saved
    }
}

function Test-PythonVersion([string]$Exe, [string[]]$Prefix) {
    $check = "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)"
    $saved = $ErrorActionPreference
    $ErrorActionPreference = "Continue"  # 5.1 turns a native command's stderr into errors
    try {
        & $Exe @Prefix -c $check 2>$null | Out-Null
        return ($LASTEXITCODE -eq 0)
    } catch {
        return $false
    } finally {
        $ErrorActionPreference = $saved
    }
}

function Find-BasePython {
    # Returns @(exe, prefix args...) for a Python 3.11 or newer.
    if ($Python) {
        if (Test-PythonVersion $Python @()) { return , @($Python) }
        throw "-Python $Python is not Python 3.11 or newer"
    }
    if (Get-Command py -ErrorAction SilentlyContinue) {
        foreach ($v in @("-3.12", "-3.11", "-3.13")) {
            if (Test-PythonVersion "py" @($v)) { return , @("py", $v) }
        }
    }
    foreach ($name in @("python", "python3")) {
        $cmd = Get-Command $name -ErrorAction SilentlyContinue
        if ($cmd -and (Test-PythonVersion $cmd.Source @())) { return , @($cmd.Source) }
    }
    throw "no Python 3.11 or newer found: install it from python.org (tick 'py launcher'), or pass -Python C:\path\to\python.exe"
}

function Get-VenvPython {
    foreach ($candidate in @(".venv\Scripts\python.exe", ".venv/bin/python")) {
        $path = Join-Path $Root $candidate
        if (Test-Path $path) { return $path }
    }
    return $null
}

function Test-LlamaInstalled([string]$Exe) {
    # Is any llama-cpp-python installed (loadable or not)?
    $check = "import importlib.metadata as m`nm.version('llama-cpp-python')"
    $saved = $ErrorActionPreference
    $ErrorActionPreference = "Continue"
    try {
        & $Exe -c $check 2>$null | Out-Null
        return ($LASTEXITCODE -eq 0)
    } finally {
        $ErrorActionPreference = $saved
    }
}

function Get-LlamaStatus([string]$Exe) {
    # One line from Python: "ok <version> offload=True|False", or "error <why it cannot load>".
    # Single quotes only inside: Windows PowerShell 5.1 drops double quotes in native arguments.
    # config.cuda_dlls (standard library only, importable from the project root) first puts CUDA 13's
    # bin\x64 on the DLL search path, as the project does before every import of llama_cpp.
    $code = "import sys`ntry:`n    from config.cuda_dlls import add_cuda_dll_dirs`n    add_cuda_dll_dirs()`n    import llama_cpp`nexcept Exception as exc:`n    print('error ' + ' '.join(str(exc).split()) + ' (' + type(exc).__name__ + ')')`n    sys.exit(0)`nprint('ok ' + llama_cpp.__version__ + ' offload=' + str(bool(llama_cpp.llama_supports_gpu_offload())))"
    $saved = $ErrorActionPreference
    $ErrorActionPreference = "Continue"
    try {
        $lines = @(& $Exe -c $code 2>$null)
    } finally {
        $ErrorActionPreference = $saved
    }
    if ($lines.Count -eq 0) { return "error python printed nothing" }
    return [string]$lines[$lines.Count - 1]
}

function Invoke-TokenProbe([string]$Exe) {
    # doctor's token probe on the demo model (SmolLM2, the demo extra) with every layer on the GPU:
    # { Line = doctor's line; Failed = $true on FAIL }. Without the demo model it says so and passes.
    $saved = $ErrorActionPreference
    $ErrorActionPreference = "Continue"
    try {
        $model = @(& $Exe -c "from config.model_files import resolve_model_path; print(resolve_model_path('smollm2'))" 2>$null)
        if ($LASTEXITCODE -ne 0 -or $model.Count -eq 0) {
            return @{ Line = "token probe skipped: no demo model (add -Demo, or run: python -m producer doctor --config YOUR.yaml)"; Failed = $false }
        }
        $lines = @(& $Exe -m workers.engines.llama_cpp_probe --check --model ([string]$model[$model.Count - 1]) --n-gpu-layers -1 2>$null)
        $failed = ($LASTEXITCODE -ne 0)
    } finally {
        $ErrorActionPreference = $saved
    }
    if ($lines.Count -eq 0) { return @{ Line = "token probe printed nothing"; Failed = $true } }
    return @{ Line = [string]$lines[$lines.Count - 1]; Failed = $failed }
}

function Get-InstalledBuild {
    # The llama-cpp-python build this script last installed: cpu, a CUDA tag or source ("" unknown).
    if (-not (Test-Path $BuildFile)) { return "" }
    return ([string](Get-Content -Path $BuildFile -Raw)).Trim()
}

function Set-InstalledBuild([string]$Build) {
    Set-Content -Path $BuildFile -Value $Build -Encoding ascii
}

function Get-ReinstallReason([string]$Installed, [string]$Wanted, [bool]$Named, [string]$Status) {
    # Why -Cuda must replace the installed build with the $Wanted wheel ("" when it stays).
    if (-not ($Status -like "ok * offload=True")) { return "it cannot offload to the GPU ($Status)" }
    if ($Installed -eq $Wanted) { return "" }
    if (($Installed -eq "source") -and -not $Named) { return "" }  # a CUDA source build stays unless -CudaTag is given
    if (-not $Installed) { return "its build is not recorded in $BuildFile" }
    return "it is the $Installed build, not $Wanted"
}

$exitCode = 0
try {
    if ($Recreate -and (Test-Path ".venv")) {
        Write-Step "Removing .venv (-Recreate)"
        Remove-Item -Recurse -Force ".venv"
    }

    $VenvPython = Get-VenvPython
    if ($VenvPython -and (Test-PythonVersion $VenvPython @())) {
        Write-Step "Reusing .venv ($(Get-PythonVersion $VenvPython @()))"
    } else {
        if (Test-Path ".venv") {
            Write-Step "Existing .venv is broken or too old: recreating it"
            Remove-Item -Recurse -Force ".venv"
        }
        $base = Find-BasePython
        $baseExe = $base[0]
        $basePrefix = @($base | Select-Object -Skip 1)
        Write-Step "Creating .venv with $($base -join ' ') ($(Get-PythonVersion $baseExe $basePrefix))"
        Invoke-Checked $baseExe ($basePrefix + @("-m", "venv", ".venv"))
        $VenvPython = Get-VenvPython
        if (-not $VenvPython) { throw "python -m venv did not create .venv" }
    }

    Write-Step "Upgrading pip"
    Invoke-Checked $VenvPython @("-m", "pip", "install", "--upgrade", "pip")

    $extras = @()
    if ($Dev) { $extras += "dev" }
    if ($Demo) { $extras += "demo" }
    if ($LlamaCpp -or $Cuda) { $extras += "llamacpp" }
    $spec = "."
    if ($extras.Count -gt 0) { $spec = ".[" + ($extras -join ",") + "]" }

    $needsLlama = $Dev -or $Demo -or $LlamaCpp -or $Cuda
    if ($needsLlama -and $FromSource) {
        if ($Cuda -and -not $env:CMAKE_ARGS) { $env:CMAKE_ARGS = "-DGGML_CUDA=on" }
        Write-Step "Building llama-cpp-python from source (CMAKE_ARGS=$env:CMAKE_ARGS; needs Visual Studio 2022 C++, installed before the CUDA Toolkit, and CMake)"
        # pip's wheel cache ignores CMAKE_ARGS: without these flags a cached CPU wheel would come back.
        Invoke-Checked $VenvPython @("-m", "pip", "install", $LlamaSpec, "--force-reinstall", "--no-deps",
            "--no-cache-dir", "--no-binary", "llama-cpp-python", "--verbose")
        Invoke-Checked $VenvPython @("-m", "pip", "install", $LlamaServerSpec, "--no-binary", "llama-cpp-python")
        Set-InstalledBuild "source"
    } elseif ($needsLlama) {
        # Install the prebuilt wheel first; the editable install below then finds it already satisfied.
        $tag = "cpu"
        if ($Cuda) { $tag = $CudaTag }
        $index = "$WheelIndex/$tag"
        $hadLlama = Test-LlamaInstalled $VenvPython
        Write-Step "Installing llama-cpp-python >= $LlamaFloor (prebuilt $tag wheel) from $index"
        Invoke-Checked $VenvPython @("-m", "pip", "install", $LlamaServerSpec,
            "--only-binary", "llama-cpp-python", "--extra-index-url", $index)
        if (-not $hadLlama) { Set-InstalledBuild $tag }
        if ($Cuda) {
            # Any installed build satisfies the requirement above (a CPU build, another CUDA tag's):
            # swap it for the asked-for wheel unless it is that one (.venv\llama-cpp-python-build.txt).
            $why = Get-ReinstallReason (Get-InstalledBuild) $CudaTag $TagNamed (Get-LlamaStatus $VenvPython)
            if ($why) {
                Write-Step "Replacing the installed llama-cpp-python with the $CudaTag wheel: $why"
                Invoke-Checked $VenvPython @("-m", "pip", "install", $LlamaSpec, "--force-reinstall", "--no-deps",
                    "--no-cache-dir", "--only-binary", "llama-cpp-python", "--index-url", $index)
                Set-InstalledBuild $CudaTag
            }
        }
    }

    Write-Step "Installing the project: pip install -e `"$spec`""
    Invoke-Checked $VenvPython @("-m", "pip", "install", "-e", $spec)

    Write-Step "Checking the installation"
    Invoke-Checked $VenvPython @("-c", "import producer, workers, config, scoring, telemetry; print('project modules import: ok')")
    if ($needsLlama) {
        $status = Get-LlamaStatus $VenvPython
        Write-Host "llama-cpp-python: $status"
        if ($status -like "error *") {
            $hint = "reinstall the CPU build: powershell -ExecutionPolicy Bypass -File tools\bootstrap.ps1 -LlamaCpp -Recreate"
            if ($Cuda) { $hint = "install the CUDA Toolkit whose major version matches -CudaTag $CudaTag (CUDA 12 keeps cudart64_12.dll and cublas64_12.dll in %CUDA_PATH%\bin, CUDA 13 keeps cudart64_13.dll and cublas64_13.dll in %CUDA_PATH%\bin\x64, and the folder that holds them is searched: CUDA_PATH must point at that toolkit), update the NVIDIA driver, open a new terminal and run this again; check with: Get-ChildItem -Recurse -Filter cudart64_*.dll `$env:CUDA_PATH\bin (docs/troubleshooting.md)" }
            throw "llama-cpp-python is installed but cannot load: $($status.Substring(6)): $hint"
        }
        if ($Cuda -and -not ($status -like "ok * offload=True")) {
            throw "llama-cpp-python is a CPU-only build (no GPU offload) although -Cuda was asked for: check that a $CudaTag wheel exists for your Python at $WheelIndex/$CudaTag, or build with -FromSource -Cuda (docs/windows.md)"
        }
        if ($Cuda) {
            # A real token on the card (doctor's probe, in a child process): offload=True only counts
            # devices; a wheel whose PTX the driver cannot JIT for the card aborts at load instead.
            $probe = Invoke-TokenProbe $VenvPython
            Write-Host $probe.Line
            if ($probe.Failed) {
                throw "the GPU could not decode one token: $($probe.Line) (docs/troubleshooting.md)"
            }
        }
    }
} catch {
    Write-Host "bootstrap failed: $($_.Exception.Message)" -ForegroundColor Red
    $exitCode = 1
} finally {
    foreach ($name in $SavedEnv.Keys) {
        [Environment]::SetEnvironmentVariable($name, $SavedEnv[$name], "Process")
    }
}
if ($exitCode -ne 0) { exit $exitCode }

Write-Host ""
Write-Host "Done. Next:" -ForegroundColor Green
Write-Host "  .\.venv\Scripts\Activate.ps1"
if ($Dev) {
    Write-Host "  .\tools\tasks.ps1 Test"
}
if ($Dev -or $Demo) {
    Write-Host "  python -m producer run --config config/eval_config.demo.yaml"
} else {
    Write-Host "  .\tools\tasks.ps1 Doctor -Config config\eval_config.local.yaml"
}
exit 0
