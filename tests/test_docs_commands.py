"""Every command the docs show must work as written.

Two levels:
- **Checked** (all of README.md and docs/*.md, fenced blocks and inline code): each
  ``python -m producer <cmd>`` names a registered command and only options it accepts; other
  ``python -m <module>`` commands name a runnable module whose ``--help`` lists the options used;
  ``tools/tasks.ps1 <Task>`` names a real task and parameters; ``tools/bootstrap.ps1`` /
  ``tools/bootstrap.sh`` use flags the scripts accept; every ``--config`` value resolves to a file.
- **Run** (blocks marked with an HTML comment ``<!-- runnable -->`` on the line before the fence):
  each ``python -m ...`` line runs, in order, in a temporary copy of ``config/`` so outputs (data/,
  experiments/, queue/) land in a temp dir, and must exit 0. Mark only commands that work offline
  here (demo or dry-run configs); server-dependent commands stay checked-only.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import click
import pytest

from producer.cli import COMMANDS
from tests.support.paths import ROOT
from tests.support.powershell import node_text, ps_parser, task_table, walk

DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
RUN_MARKER = "<!-- runnable -->"
PROJECT_PACKAGES = ("producer", "workers", "config", "scoring", "telemetry")
FENCE = re.compile(r"^```(\S*)\s*$")
INLINE = re.compile(r"`([^`\n]+)`")
PYTHON_TOKEN = re.compile(r"(^|[\\/])(python3?(\.exe)?|py)$", re.IGNORECASE)
EXCELLENCE_TOKEN = re.compile(r"(^|[\\/])excellence(\.exe)?$", re.IGNORECASE)


@dataclass(frozen=True)
class DocCommand:
    doc: str
    line: int
    text: str
    runnable: bool

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def _segments(line: str) -> list[str]:
    """Split a shell line on ``&&``, ``;`` and ``|`` (outside quotes is good enough for docs)."""
    return [s.strip() for s in re.split(r"&&|;|\|", line) if s.strip()]


def extract_commands(path: Path) -> list[DocCommand]:
    commands: list[DocCommand] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    in_block, runnable, lang = False, False, ""
    rel = str(path.relative_to(ROOT))
    for number, raw in enumerate(lines, start=1):
        fence = FENCE.match(raw.strip())
        if fence and not in_block:
            in_block, lang = True, fence.group(1).lower()
            previous = next((x.strip() for x in reversed(lines[: number - 1]) if x.strip()), "")
            runnable = previous == RUN_MARKER
            continue
        if fence and in_block:
            in_block, runnable = False, False
            continue
        if in_block:
            if lang in ("bash", "sh", "shell", "powershell", "pwsh", "ps1", "console", "text", ""):
                stripped = raw.strip()
                if stripped and not stripped.startswith("#"):
                    for seg in _segments(stripped):
                        commands.append(DocCommand(rel, number, seg, runnable))
            continue
        for span in INLINE.findall(raw):
            for seg in _segments(span):
                if _python_module(seg) or any(k in seg for k in ("tasks.ps1", "bootstrap.", "huey_consumer ")):
                    commands.append(DocCommand(rel, number, seg, False))
    return commands


def all_commands() -> list[DocCommand]:
    return [c for doc in DOC_FILES if doc.exists() for c in extract_commands(doc)]


def _tokens(text: str) -> list[str]:
    try:
        tokens = shlex.split(text, posix=False)
    except ValueError:
        tokens = text.split()
    return [t[1:-1] if len(t) > 1 and t[0] == t[-1] and t[0] in "\"'" else t for t in tokens]


def _python_module(text: str) -> tuple[str, list[str]] | None:
    """(module, args after it) for ``[path/]python [-X ..] -m module args``, or for the console script
    ``[path/]excellence args`` (it is ``python -m producer``); None otherwise."""
    tokens = _tokens(text)
    for i, tok in enumerate(tokens):
        if i == 0 and EXCELLENCE_TOKEN.search(tok.lstrip("&").strip()):
            return "producer", tokens[i + 1 :]
        if PYTHON_TOKEN.search(tok.lstrip("&").strip()):
            rest = tokens[i + 1 :]
            if "-m" in rest:
                m = rest.index("-m")
                if m + 1 < len(rest):
                    return rest[m + 1], rest[m + 2 :]
            return None
    return None


def _options(args: list[str]) -> list[str]:
    """Option names in ``args``, up to a ``--`` (after it, everything is passed through)."""
    if "--" in args:
        args = args[: args.index("--")]
    return [a.split("=", 1)[0] for a in args if re.match(r"^--?[A-Za-z]", a)]


def _click_opts(command: click.Command) -> set[str]:
    found = {"--help", "-h"}
    for param in command.params:
        found.update(getattr(param, "opts", []))
        found.update(getattr(param, "secondary_opts", []))
    return found


def _kebab(option: str) -> str:
    """The kebab-case spelling our commands declare for a (hidden) ``--snake_case`` alias."""
    return "--" + option[2:].replace("_", "-") if option.startswith("--") else option


@functools.cache
def _module_help(module: str) -> str:
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                          text=True, encoding="utf-8", errors="replace", timeout=120)
    assert proc.returncode == 0, f"python -m {module} --help failed: {proc.stderr[-400:]}"
    return proc.stdout


def _config_value(args: list[str]) -> str | None:
    for i, a in enumerate(args):
        if a == "--config" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return None


def _check_config_ref(value: str) -> str | None:
    from config.errors import ConfigError
    from config.lookup import resolve_config_path

    if value.startswith(("<", "$")) or "..." in value or value.isupper():
        return None  # a placeholder the reader fills in
    portable = value.replace("\\", "/")
    cwd = Path.cwd()
    try:
        os.chdir(ROOT)
        resolve_config_path(portable)
    except ConfigError as exc:
        return f"--config {value}: {exc}"
    finally:
        os.chdir(cwd)
    return None


def check_python_command(module: str, args: list[str]) -> list[str]:
    problems = []
    if module == "producer":
        if not args or args[0].startswith("-"):
            bad = [o for o in _options(args) if o not in ("--help", "-h", "--version")]
            return [f"unknown producer group options {bad}"] if bad else []
        sub = args[0]
        if sub not in COMMANDS:
            return [f"'producer {sub}' is not a registered command ({sorted(COMMANDS)})"]
        mod, _, attr = COMMANDS[sub].partition(":")
        accepted = _click_opts(getattr(import_module(mod), attr))
        problems += [f"producer {sub} has no option {o}" for o in _options(args[1:]) if _kebab(o) not in accepted]
    elif module == "pytest":
        return []
    else:
        import importlib.util

        # Only the top-level package: find_spec of a submodule would import (run) third-party code here.
        if importlib.util.find_spec(module.split(".")[0]) is None:
            return [f"module {module} does not exist"]
        text = _module_help(module)
        ours = module.split(".")[0] in PROJECT_PACKAGES  # our commands take --snake_case as a hidden alias
        problems += [f"python -m {module} --help does not list {o}" for o in _options(args)
                     if o not in text and not (ours and _kebab(o) in text)]
    value = _config_value(args)
    if value and (err := _check_config_ref(value)):
        problems.append(err)
    return problems


@functools.cache
def _ps_params(script: str) -> set[str]:
    source = (ROOT / "tools" / script).read_bytes()
    tree = ps_parser().parse(source)
    names = set()
    for node in walk(tree.root_node):
        if node.type == "script_parameter":
            for child in walk(node):
                if child.type == "variable":
                    names.add(node_text(source, child).lstrip("$").lower())
                    break
    return names


@functools.cache
def _sh_flags() -> set[str]:
    text = (ROOT / "tools" / "bootstrap.sh").read_text(encoding="utf-8")
    return {f for arm in re.findall(r"^\s*([-|\w]+)\)", text, re.MULTILINE) for f in arm.split("|")}


def check_script_command(text: str) -> list[str]:
    tokens = _tokens(text)
    problems = []
    for i, tok in enumerate(tokens):
        name = tok.replace("\\", "/").rsplit("/", 1)[-1]
        if name == "tasks.ps1":
            rest = tokens[i + 1 :]
            tasks = {t.lower() for t in task_table()}
            if rest and not rest[0].startswith("-") and rest[0].lower() not in tasks:
                problems.append(f"tasks.ps1 has no task {rest[0]}")
            params = _ps_params("tasks.ps1")
            problems += [f"tasks.ps1 has no parameter {o}" for o in _options(rest)
                         if o.lstrip("-").lower() not in params and not o.startswith("--")]
        elif name == "bootstrap.ps1":
            params = _ps_params("bootstrap.ps1")
            problems += [f"bootstrap.ps1 has no parameter {o}" for o in _options(tokens[i + 1 :])
                         if o.lstrip("-").lower() not in params]
        elif name == "huey_consumer" and i + 1 < len(tokens):
            module, _, attr = tokens[i + 1].rpartition(".")
            try:
                getattr(import_module(module), attr)
            except (ImportError, AttributeError, ValueError) as exc:
                problems.append(f"huey_consumer target {tokens[i + 1]} does not exist ({exc})")
        elif name == "bootstrap.sh":
            problems += [f"bootstrap.sh has no flag {o}" for o in _options(tokens[i + 1 :]) if o not in _sh_flags()]
    return problems


COMMANDS_IN_DOCS = all_commands()


@pytest.mark.unit
def test_docs_exist_and_have_commands() -> None:
    docs = {c.doc for c in COMMANDS_IN_DOCS}
    assert {"docs/windows.md", "docs/troubleshooting.md"} <= docs
    assert any(c.runnable for c in COMMANDS_IN_DOCS if c.doc == "docs/windows.md")


def _reads_files_only(command: DocCommand) -> bool:
    """True unless checking ``command`` runs ``python -m <module> --help`` (a subprocess: not unit)."""
    parsed = _python_module(command.text)
    return parsed is None or parsed[0] in ("producer", "pytest")


@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.unit) if _reads_files_only(c) else c
                                     for c in COMMANDS_IN_DOCS], ids=str)
def test_doc_command_is_valid(command: DocCommand) -> None:
    parsed = _python_module(command.text)
    problems = check_python_command(*parsed) if parsed else []
    problems += check_script_command(command.text)
    assert not problems, f"{command}: " + "; ".join(problems)


RUNNABLE_BLOCKS: dict[str, list[DocCommand]] = {}
for _cmd in COMMANDS_IN_DOCS:
    if _cmd.runnable:
        RUNNABLE_BLOCKS.setdefault(_cmd.doc, []).append(_cmd)


@pytest.mark.parametrize("doc", sorted(RUNNABLE_BLOCKS))
def test_runnable_doc_commands_run(doc: str, tmp_path: Path) -> None:
    """Runs the marked commands of one document, in order, in a scratch folder with a copy of config/."""
    shutil.copytree(ROOT / "config", tmp_path / "config", ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    env = dict(os.environ, EXCELLENCE_QUEUE_DIR=str(tmp_path / "queue"), PYTHONIOENCODING="utf-8")
    for command in RUNNABLE_BLOCKS[doc]:
        parsed = _python_module(command.text)
        assert parsed, f"{command}: runnable blocks may only hold 'python -m ...' commands"
        module, args = parsed
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, encoding="utf-8", errors="replace", timeout=600)
        assert proc.returncode == 0, f"{command}\nexit {proc.returncode}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
        assert "Traceback" not in proc.stderr, f"{command}\n{proc.stderr[-1500:]}"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "expected_problem"),
    [
        ("python -m producer frobnicate --config config/eval_config.demo.yaml", "not a registered command"),
        ("python -m producer plan --no-such-option", "has no option --no-such-option"),
        ("python -m producer plan --config nowhere.yaml", "--config nowhere.yaml"),
        ("excellence frobnicate", "not a registered command"),
        ("excellence plan --no-such-option", "has no option --no-such-option"),
        (".\\tools\\tasks.ps1 Frobnicate", "has no task Frobnicate"),
        (".\\tools\\tasks.ps1 Smoke -Nope x", "has no parameter -Nope"),
        ("pwsh -File tools\\bootstrap.ps1 -Gpu", "has no parameter -Gpu"),
        ("bash tools/bootstrap.sh --everything", "has no flag --everything"),
        ("huey_consumer producer.no_such_huey -w 2 -k thread", "does not exist"),
    ],
)
def test_checker_catches_wrong_commands(text: str, expected_problem: str) -> None:
    parsed = _python_module(text)
    problems = (check_python_command(*parsed) if parsed else []) + check_script_command(text)
    assert any(expected_problem in p for p in problems), problems


@pytest.mark.parametrize(
    "text",
    ["python -m producer plan --config config/eval_config.demo.yaml",
     ".\\.venv\\Scripts\\python -m producer plan --config config\\eval_config.demo.yaml",
     ".\\tools\\tasks.ps1 Doctor -Config config\\eval_config.local.yaml",
     ".\\tools\\tasks.ps1 Test -- -m \"not realmodel\" -k windows",
     "pwsh -File tools\\bootstrap.ps1 -LlamaCpp -Cuda -CudaTag cu124",
     "bash tools/bootstrap.sh --dev --recreate",
     "python -m producer analyse --results_dir experiments/run_X/t/results",  # snake_case: a hidden alias
     "python -m scoring.report --results_dir experiments/run_X/t/results"],
)
def test_checker_accepts_right_commands(text: str) -> None:
    parsed = _python_module(text)
    problems = (check_python_command(*parsed) if parsed else []) + check_script_command(text)
    assert not problems
