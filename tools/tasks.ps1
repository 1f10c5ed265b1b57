<#
.SYNOPSIS
    Named shortcuts for the project's Python entry points (Windows PowerShell 5.1 or PowerShell 7).

.DESCRIPTION
    Each task runs exactly one Python command with the .venv interpreter; the tasks hold no logic of
    their own, so anything a task does can also be typed by hand (see -List). Arguments after
    "--" are passed through to the Python command unchanged (without "--", PowerShell may take a
    short option such as -v for one of its own common parameters).

.EXAMPLE
    .\tools\tasks.ps1 -List
    .\tools\tasks.ps1 Smoke
    .\tools\tasks.ps1 Doctor -Config config\eval_config.local.yaml
    .\tools\tasks.ps1 Workers -Workers 2 -Config config\eval_config.local.yaml
    .\tools\tasks.ps1 Report -ResultsDir experiments\run_x\results\trial_y
    .\tools\tasks.ps1 Test -- -m "not realmodel" -k windows
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [string]$Task = "",
    [switch]$List,
    [string]$Config = "config/eval_config.demo.yaml",
    [int]$Workers = 2,
    [string]$RunId = "",
    [string]$ResultsJsonl = "",
    [string]$OutCsv = "",
    [string]$ResultsDir = "",
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$Rest = @()
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

$Root = Split-Path -Parent $PSScriptRoot

# Task name -> help text and the Python arguments (after "python"). One command per task.
$Tasks = [ordered]@{
    Doctor   = @{ Help = "Check the setup before a run (Python, engine, model, disk)"
                  Args = { "-m", "producer", "doctor", "--config", $Config } }
    Plan     = @{ Help = "Show trials, request counts and estimated cost; runs nothing"
                  Args = { "-m", "producer", "plan", "--config", $Config } }
    Smoke    = @{ Help = "Offline end-to-end check with the dry-run engine (seconds)"
                  Args = { "-m", "producer", "run", "--config", $Config, "--dry-run", "--limit-items", "5" } }
    Data     = @{ Help = "Prepare the datasets (bundled samples or downloads)"
                  Args = { "-m", "producer", "prepare", "--config", $Config } }
    Build    = @{ Help = "Build the batch input JSONL files"
                  Args = { "-m", "producer", "build", "--config", $Config } }
    Enqueue  = @{ Help = "Put the run's requests on the durable queue"
                  Args = { "-m", "producer", "enqueue", "--config", $Config } }
    Workers  = @{ Help = "Start the spawn-safe worker pool (-Workers N)"
                  Args = { "-m", "workers", "-w", "$Workers", "--config", $Config } }
    Status   = @{ Help = "Progress of the current run"
                  Args = { "-m", "producer", "status" } }
    Run      = @{ Help = "Everything in one command: prepare, enqueue, work, score, report"
                  Args = { "-m", "producer", "run", "--config", $Config } }
    Parse    = @{ Help = "Raw results JSONL -> predictions CSV (-ResultsJsonl, -OutCsv)"
                  Args = { "-m", "producer", "parse", "--results-jsonl", $ResultsJsonl, "--out-csv", $OutCsv } }
    Score    = @{ Help = "Score predictions (pass its options after --)"
                  Args = { "-m", "scoring.score_predictions" } }
    Stats    = @{ Help = "Paired statistics (pass its options after --)"
                  Args = { "-m", "scoring.stats" } }
    Report   = @{ Help = "Write the report for one trial's results (-ResultsDir)"
                  Args = { "-m", "scoring.report", "--results-dir", $ResultsDir } }
    Archive  = @{ Help = "Archive a finished run (-RunId)"
                  Args = { "-m", "producer", "archive", "--run-id", $RunId } }
    Test     = @{ Help = "The test suite, with encoding warnings as errors"
                  Args = { "-X", "warn_default_encoding", "-W", "error::EncodingWarning", "-m", "pytest" } }
}

function Get-Python {
    foreach ($candidate in @(".venv\Scripts\python.exe", ".venv/bin/python")) {
        $path = Join-Path $Root $candidate
        if (Test-Path $path) { return $path }
    }
    $onPath = Get-Command python -ErrorAction SilentlyContinue
    if ($onPath) {
        Write-Warning "no .venv found (run tools\bootstrap.ps1); using $($onPath.Source)"
        return $onPath.Source
    }
    Write-Host "no Python found: run powershell -ExecutionPolicy Bypass -File tools\bootstrap.ps1 first" -ForegroundColor Red
    exit 1
}

function Show-Tasks {
    Write-Host "Usage: .\tools\tasks.ps1 <Task> [-Config FILE] [-Workers N] [-RunId ID] [-ResultsJsonl F -OutCsv F] [-ResultsDir D] [-- extra args]"
    Write-Host ""
    foreach ($name in $Tasks.Keys) {
        $argv = & $Tasks[$name].Args
        Write-Host ("  {0,-8} {1}" -f $name, $Tasks[$name].Help)
        Write-Host ("           python {0}" -f ($argv -join " ")) -ForegroundColor DarkGray
    }
}

if ($List -or -not $Task) {
    Show-Tasks
    exit 0
}

$match = @($Tasks.Keys | Where-Object { $_ -eq $Task })
if ($match.Count -eq 0) {
    Write-Host "unknown task '$Task'; tasks: $($Tasks.Keys -join ', ')" -ForegroundColor Red
    exit 2
}
$name = $match[0]

Set-Location $Root
$python = Get-Python
$argv = @(& $Tasks[$name].Args) + @($Rest)
Write-Host "> python $($argv -join ' ')" -ForegroundColor DarkGray
# UTF-8 between PowerShell and Python, whatever the console code page; only for this command: a task
# run in the current session (.\tools\tasks.ps1) leaves the session's own settings as they were.
$saved = @{ PYTHONUTF8 = $env:PYTHONUTF8; PYTHONIOENCODING = $env:PYTHONIOENCODING }
$env:PYTHONUTF8 = "1"
$env:PYTHONIOENCODING = "utf-8"
$code = 1
try {
    & $python @argv
    $code = $LASTEXITCODE
} finally {
    foreach ($key in $saved.Keys) {
        [Environment]::SetEnvironmentVariable($key, $saved[$key], "Process")
    }
}
exit $code
