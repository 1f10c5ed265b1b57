<#
.SYNOPSIS
    Set up the project on Windows: a .venv with Python 3.11+ and the project installed editable.

.DESCRIPTION
    Creates .venv with the py launcher (tries 3.12, then 3.11, then 3.13, then python on PATH),
    upgrades pip and installs the project with the chosen extras. Idempotent: a second run reuses
    .venv. Stops at the first failing step with a non-zero exit code.

    Runtime only (Ollama, llama-server, Fireworks):   pwsh tools/bootstrap.ps1
    Embedded demo (llama.cpp on the CPU + SmolLM2):    pwsh tools/bootstrap.ps1 -Demo
    Tests and tools:                                   pwsh tools/bootstrap.ps1 -Dev
    In-process llama.cpp on the GPU (CUDA wheel):      pwsh tools/bootstrap.ps1 -LlamaCpp -Cuda

    llama-cpp-python (needed by -Demo, -Dev, -LlamaCpp) comes from its project's prebuilt wheel
    index, because compiling it on Windows needs Visual Studio Build Tools and CMake:
    https://abetlen.github.io/llama-cpp-python/whl/cpu, or with -Cuda
    https://abetlen.github.io/llama-cpp-python/whl/<CudaTag> (cu121..cu124 for CUDA 12.1-12.4,
    Python 3.10-3.12, per llama-cpp-python's README). Only wheels are accepted from there, so pip
    never falls back to compiling PyPI's newer source release. -FromSource compiles instead (set
    CMAKE_ARGS="-DGGML_CUDA=on" first for a CUDA build). The prebuilt CUDA wheels predate RTX 50-series
    (Blackwell) GPUs: if loading a model fails with "no kernel image is available", use Ollama or
    build from source with CUDA 12.8+ (docs/windows.md).

.EXAMPLE
    pwsh -File tools/bootstrap.ps1 -Demo
#>
[CmdletBinding()]
param(
    [switch]$Recreate,
    [switch]$LlamaCpp,
    [switch]$Cuda,
    [string]$CudaTag = "cu124",
    [switch]$FromSource,
    [switch]$Demo,
    [switch]$Dev,
    [string]$Python = ""
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root
$env:PIP_NO_INPUT = "1"
$env:PIP_DISABLE_PIP_VERSION_CHECK = "1"
$env:PYTHONUTF8 = "1"

function Write-Step([string]$Message) {
    Write-Host ""
    Write-Host "==> $Message" -ForegroundColor Cyan
}

function Invoke-Checked([string]$Exe, [string[]]$Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "command failed (exit $LASTEXITCODE): $Exe $($Arguments -join ' ')"
    }
}

function Test-PythonVersion([string]$Exe, [string[]]$Prefix) {
    $check = "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)"
    try {
        & $Exe @Prefix -c $check 2>$null | Out-Null
        return ($LASTEXITCODE -eq 0)
    } catch {
        return $false
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

try {
    if ($Recreate -and (Test-Path ".venv")) {
        Write-Step "Removing .venv (-Recreate)"
        Remove-Item -Recurse -Force ".venv"
    }

    $VenvPython = Get-VenvPython
    if ($VenvPython -and (Test-PythonVersion $VenvPython @())) {
        Write-Step "Reusing .venv ($(& $VenvPython --version))"
    } else {
        if (Test-Path ".venv") {
            Write-Step "Existing .venv is broken or too old: recreating it"
            Remove-Item -Recurse -Force ".venv"
        }
        $base = Find-BasePython
        $baseExe = $base[0]
        $basePrefix = @($base | Select-Object -Skip 1)
        Write-Step "Creating .venv with $($base -join ' ') ($(& $baseExe @basePrefix --version))"
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
    if ($needsLlama -and -not $FromSource) {
        # Install the prebuilt wheel first; the editable install below then finds it already satisfied.
        # --only-binary: never fall back to compiling PyPI's newer source release.
        $tag = if ($Cuda) { $CudaTag } else { "cpu" }
        $index = "https://abetlen.github.io/llama-cpp-python/whl/$tag"
        Write-Step "Installing llama-cpp-python (prebuilt $tag wheel) from $index"
        Invoke-Checked $VenvPython @("-m", "pip", "install", "llama-cpp-python[server]",
            "--only-binary", "llama-cpp-python", "--extra-index-url", $index)
        if ($Cuda) {
            # An existing CPU build satisfies the requirement above: swap it for the CUDA wheel.
            $hasGpu = $false
            try {
                & $VenvPython -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)" 2>$null
                $hasGpu = ($LASTEXITCODE -eq 0)
            } catch {
                $hasGpu = $false
            }
            if (-not $hasGpu) {
                Write-Step "Replacing the installed CPU build of llama-cpp-python with the $CudaTag wheel"
                Invoke-Checked $VenvPython @("-m", "pip", "install", "llama-cpp-python", "--force-reinstall",
                    "--no-deps", "--only-binary", "llama-cpp-python", "--index-url", $index)
            }
        }
    }

    Write-Step "Installing the project: pip install -e `"$spec`""
    Invoke-Checked $VenvPython @("-m", "pip", "install", "-e", $spec)

    Write-Step "Checking the installation"
    Invoke-Checked $VenvPython @("-c", "import producer, workers, config, scoring, telemetry; print('project modules import: ok')")
    if ($Cuda) {
        Invoke-Checked $VenvPython @("-c", "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, 'GPU offload:', llama_cpp.llama_supports_gpu_offload())")
    }
} catch {
    Write-Host "bootstrap failed: $($_.Exception.Message)" -ForegroundColor Red
    exit 1
}

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
