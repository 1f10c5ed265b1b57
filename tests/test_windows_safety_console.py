"""Every CLI runs on a cp1252 console (the Windows default in many locales) without crashing.

``PYTHONIOENCODING=cp1252`` gives the child the same stdout/stderr encoding a Windows console has;
text that cp1252 cannot encode (✓, 你好, emoji) must come out replaced, never as UnicodeEncodeError.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from producer.cli import COMMANDS
from tests.support.offline_config import write_offline_config
from tests.support.paths import ROOT

PACKAGES = ("producer", "workers", "config", "scoring", "telemetry")
NON_CP1252 = "✓ 你好 🚀"


def run_cp1252(argv: list[str], tmp_path: Path, timeout: float = 180) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONIOENCODING="cp1252", EXCELLENCE_QUEUE_DIR=str(tmp_path / "queue"))
    env.pop("PYTHONUTF8", None)
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, timeout=timeout)


def assert_no_crash(proc: subprocess.CompletedProcess[bytes], expect_rc: int | None = 0) -> str:
    out = proc.stdout.decode("cp1252", "replace")
    err = proc.stderr.decode("cp1252", "replace")
    assert "UnicodeEncodeError" not in err and "Traceback" not in err, err[-2000:]
    if expect_rc is not None:
        assert proc.returncode == expect_rc, f"exit {proc.returncode}: {err[-1000:]}"
    return out + err


def module_entry_points() -> list[str]:
    """Project modules runnable with ``python -m`` (a main guard, or a package's __main__.py)."""
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__main__":
                found.append(".".join(parts[:-1]))
            elif parts[-1] != "__init__" and 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"):
                found.append(".".join(parts))
    return sorted(set(found))


def test_group_help(tmp_path: Path) -> None:
    out = assert_no_crash(run_cp1252(["-m", "producer", "--help"], tmp_path))
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_producer_command_help(command: str, tmp_path: Path) -> None:
    out = assert_no_crash(run_cp1252(["-m", "producer", command, "--help"], tmp_path))
    assert "Usage" in out


@pytest.mark.parametrize("module", [m for m in module_entry_points() if m != "producer"])
def test_every_module_entry_point_help(module: str, tmp_path: Path) -> None:
    assert importlib.util.find_spec(module) is not None
    assert_no_crash(run_cp1252(["-m", module, "--help"], tmp_path))


@pytest.mark.unit
def test_expected_entry_points_exist() -> None:
    """The stage CLIs the docs and tasks.ps1 name must be runnable with python -m."""
    assert {"producer", "workers", "scoring.report"} <= set(module_entry_points())


def test_plan_demo_config(tmp_path: Path) -> None:
    out = assert_no_crash(run_cp1252(["-m", "producer", "plan", "--config", "config/eval_config.demo.yaml"],
                                     tmp_path))
    assert "total requests" in out


def test_plan_prints_non_ascii_prompt_paths_and_names(tmp_path: Path) -> None:
    """Prompt set names and file paths with characters cp1252 lacks are printed without a crash."""
    prompts = tmp_path / f"prompts {NON_CP1252}"
    prompts.mkdir()
    control = prompts / "contrôle ✓.txt"
    treatment = prompts / "traitement 你好.txt"
    control.write_text(f"Réponds brièvement. {NON_CP1252}\n", encoding="utf-8")
    treatment.write_text(f"Sois honnête; dis « je ne sais pas ». {NON_CP1252}\n", encoding="utf-8")
    set_name = "défaut_✓"
    config = write_offline_config(
        tmp_path, name="config ✓.yaml",
        prompt_sets={set_name: {"control": str(control), "treatment": str(treatment)}},
        default_prompt_set=set_name,
    )
    out = assert_no_crash(run_cp1252(["-m", "producer", "plan", "--config", str(config)], tmp_path))
    assert "d?faut_?" in out or "défaut_?" in out  # the set name, with unencodable characters replaced


def test_one_line_error_with_non_ascii_path(tmp_path: Path) -> None:
    missing = tmp_path / f"nowhere {NON_CP1252}.yaml"
    proc = run_cp1252(["-m", "producer", "plan", "--config", str(missing)], tmp_path)
    out = assert_no_crash(proc, expect_rc=2)
    assert len(proc.stderr.decode("cp1252", "replace").strip().splitlines()) == 1, out


def test_dry_run_smoke_on_cp1252(tmp_path: Path) -> None:
    """The offline smoke run (dry-run engine) end to end, printing progress on a cp1252 console."""
    config = write_offline_config(tmp_path)
    proc = run_cp1252(["-m", "producer", "run", "--config", str(config), "--dry-run", "--limit-items", "3"],
                      tmp_path, timeout=300)
    assert_no_crash(proc)
    assert list((tmp_path / "experiments").rglob("*.csv")), "the smoke run wrote no CSV"
