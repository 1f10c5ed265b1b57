"""The PowerShell scripts parse, and every task in tools/tasks.ps1 names a real entry point.

PowerShell itself cannot be installed here, so the scripts are parsed with tree-sitter's PowerShell
grammar (the `tree-sitter-language-pack` wheel bundles it). The task table is read from the parse
tree, not with regular expressions, and each command it names is checked against the real CLIs.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import click
import pytest

from tests.support.paths import ROOT
from tests.support.powershell import PS_SCRIPTS, TOOLS, syntax_problems, task_table

# The issue's task list and the entry point each must call (module, subcommand or None).
EXPECTED_TASKS: dict[str, tuple[str, str | None]] = {
    "Doctor": ("producer", "doctor"),
    "Plan": ("producer", "plan"),
    "Smoke": ("producer", "run"),
    "Data": ("producer", "prepare"),
    "Build": ("producer", "build"),
    "Enqueue": ("producer", "enqueue"),
    "Workers": ("workers", None),
    "Status": ("producer", "status"),
    "Run": ("producer", "run"),
    "Parse": ("producer", "parse"),
    "Score": ("scoring.score_predictions", None),
    "Stats": ("scoring.stats", None),
    "Report": ("scoring.report", None),
    "Archive": ("producer", "archive"),
    "Test": ("pytest", None),
}


def _module_and_command(argv: list[str]) -> tuple[str, str | None]:
    assert "-m" in argv, f"no '-m module' in {argv}"
    module = argv[argv.index("-m") + 1]
    rest = argv[argv.index("-m") + 2 :]
    sub = rest[0] if module == "producer" and rest else None
    return module, sub


@pytest.mark.unit
@pytest.mark.parametrize("script", PS_SCRIPTS, ids=lambda p: p.name)
def test_powershell_script_parses(script: Path) -> None:
    problems = syntax_problems(script.read_bytes())
    assert not problems, f"{script.name} has syntax errors:\n" + "\n".join(problems)


@pytest.mark.unit
def test_expected_scripts_exist() -> None:
    assert {p.name for p in PS_SCRIPTS} >= {"bootstrap.ps1", "tasks.ps1"}


@pytest.mark.unit
def test_syntax_check_catches_a_broken_script() -> None:
    """The checker itself must fail on real mistakes (unclosed brace, unclosed string)."""
    good = (TOOLS / "tasks.ps1").read_bytes()
    assert syntax_problems(b"function f {\n  Write-Host 'x'\n")
    assert b"exit $code" in good
    assert syntax_problems(good.replace(b"exit $code", b'exit "$code'))
    assert syntax_problems(b"$x = @(1, 2\nWrite-Host $x\n")


@pytest.mark.unit
def test_task_names_match_the_issue_list() -> None:
    assert list(task_table()) == list(EXPECTED_TASKS)


@pytest.mark.unit
@pytest.mark.parametrize("task", list(EXPECTED_TASKS))
def test_task_calls_its_entry_point(task: str) -> None:
    argv = task_table()[task]
    assert _module_and_command(argv) == EXPECTED_TASKS[task], f"{task}: python {' '.join(argv)}"


def _click_options(command: click.Command) -> set[str]:
    opts: set[str] = set()
    for param in command.params:
        opts.update(getattr(param, "opts", []))
        opts.update(getattr(param, "secondary_opts", []))
    return opts


def _options_in(argv: list[str]) -> list[str]:
    return [a for a in argv if a.startswith("-") and a not in ("-m", "-X", "-W")]


@pytest.mark.unit
@pytest.mark.parametrize("task", [t for t, (m, _) in EXPECTED_TASKS.items() if m == "producer"])
def test_producer_task_uses_registered_command_and_real_options(task: str) -> None:
    """``producer <cmd>`` must be in producer/cli/__init__.py COMMANDS and accept every option the task passes."""
    from producer.cli import COMMANDS

    argv = task_table()[task]
    _, sub = _module_and_command(argv)
    assert sub in COMMANDS, f"{task}: 'producer {sub}' is not registered in producer/cli/__init__.py COMMANDS"
    module, _, attr = COMMANDS[sub].partition(":")
    command = getattr(import_module(module), attr)
    missing = [o for o in _options_in(argv[argv.index(sub) + 1 :]) if o not in _click_options(command)]
    assert not missing, f"{task}: producer {sub} does not accept {missing}"


@pytest.mark.parametrize("task", ["Workers", "Score", "Stats", "Report"])
def test_module_task_is_runnable_and_accepts_its_options(task: str) -> None:
    """``python -m X`` needs a ``__main__`` guard; options the task passes must appear in ``--help``."""
    argv = task_table()[task]
    module, _ = _module_and_command(argv)
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{task}: module {module} does not exist"
    if spec.submodule_search_locations:  # a package: python -m runs its __main__
        main_spec = importlib.util.find_spec(f"{module}.__main__")
        assert main_spec is not None, f"{task}: package {module} has no __main__.py"
        origin = Path(main_spec.origin)
    else:
        origin = Path(spec.origin)
        assert 'if __name__ == "__main__":' in origin.read_text(encoding="utf-8"), f"{origin} has no main guard"
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
        encoding="utf-8", errors="replace", timeout=120,
    )
    assert proc.returncode == 0, f"python -m {module} --help failed: {proc.stderr[-500:]}"
    missing = [o for o in _options_in(argv) if o not in proc.stdout]
    assert not missing, f"{task}: python -m {module} --help does not mention {missing}"
