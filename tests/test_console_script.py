"""``excellence``: the console script a ``pip install`` creates, from a fresh virtual environment.

Why a fresh venv: the console script exists only where pip wrote it from setup.cfg's entry points; a
test that imports producer.cli would pass with a broken setup.cfg. The project is built into a wheel
and installed (no editable link, no source tree on the path) into a new venv; its dependencies are
borrowed from the test interpreter through a .pth file, so no network is needed for them.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow


def setup_cfg_version() -> str:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser["metadata"]["version"]


def _script(env_dir: Path, name: str) -> Path:
    sub = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return env_dir / sub / f"{name}{suffix}"


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the project's wheel installed (built from a copy of the tracked sources)."""
    tmp = tmp_path_factory.mktemp("fresh")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "experiments", "data", "queue", "build", "dist", "*.egg-info", "__pycache__", "tests"))
    wheels = tmp / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
                           capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = _script(env_dir, "python")
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, encoding="utf-8", check=True).stdout.strip()
    # the dependencies (click, pydantic...) come from the test interpreter's site-packages
    Path(purelib, "_borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    wheel = next(wheels.glob("excellence_experiment-*.whl"))
    installed = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                               capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return env_dir


def test_excellence_version_from_a_fresh_venv(fresh_venv: Path, tmp_path: Path) -> None:
    exe = _script(fresh_venv, "excellence")
    assert exe.is_file(), "pip did not create the excellence console script (setup.cfg entry_points)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(exe), "--version"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         encoding="utf-8", timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"excellence {setup_cfg_version()}"
    # the installed copy answers, not the source tree
    where = subprocess.run([str(_script(fresh_venv, "python")), "-c", "import producer; print(producer.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, encoding="utf-8", check=True)
    assert str(fresh_venv) in where.stdout
    helped = subprocess.run([str(exe), "-h"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            encoding="utf-8", timeout=60)
    assert helped.returncode == 0 and "Usage: excellence" in helped.stdout
    from producer.cli import COMMANDS

    listed = {line.split()[0] for line in helped.stdout.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == set(COMMANDS)


def test_python_m_producer_keeps_working_with_version() -> None:
    out = run_cli(["--version"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("excellence ")
