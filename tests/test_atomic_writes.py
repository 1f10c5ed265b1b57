"""Every artifact write goes through config.atomic: unique temp names, retrying replace, the user's umask.

Issues 12.6 (files were 0600 while others are 0644) and 14.7 (bare ``Path.replace`` and a fixed temp
name in figures). Real files, real matplotlib; the POSIX mode tests are skipped on Windows, which has
no mode bits.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from config import atomic
from tests.support.paths import ROOT

SOURCE_PACKAGES = ("producer", "workers", "scoring", "config", "telemetry", "tools")
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="Windows files have no POSIX mode bits")


@pytest.fixture
def umask():
    """Set a umask for the test and restore the previous one."""
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.unit
@posix_only
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_atomic_files_get_the_users_umask_not_0600(tmp_path, umask, mask) -> None:
    umask(mask)
    want = 0o666 & ~mask
    assert _mode(atomic.write_json_atomic(tmp_path / "a.json", {"x": 1})) == want
    assert _mode(atomic.write_text_atomic(tmp_path / "b.md", "text\n")) == want
    assert _mode(atomic.write_csv_atomic(tmp_path / "c.csv", ["a"], [[1]])) == want
    assert _mode(atomic.write_jsonl_atomic(tmp_path / "d.jsonl", [{"a": 1}])) == want
    plain = tmp_path / "plain.txt"  # what any other program would create here
    plain.write_text("x", encoding="utf-8")
    assert _mode(plain) == want
    assert atomic.current_umask() == mask  # read without changing it
    with atomic.atomic_target(tmp_path / "e.bin") as tmp:
        tmp.write_bytes(b"x")
    assert _mode(tmp_path / "e.bin") == want


@posix_only
def test_report_figure_is_readable_by_others(tmp_path, umask) -> None:
    from scoring import figures

    umask(0o022)
    path = figures.forest(["a", "b"], [1.0, -2.0], [0.0, -3.0], [2.0, -1.0], [False, True], "EM",
                          tmp_path / "figures" / "f.png")
    assert path is not None and _mode(Path(path)) == 0o644


@pytest.mark.unit
def test_temp_names_are_unique_and_cleaned_up(tmp_path) -> None:
    target = tmp_path / "out.json"
    with atomic.atomic_target(target) as first, atomic.atomic_target(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        first.write_text("1", encoding="utf-8")
        second.write_text("2", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "1"  # the outer writer finished last
    with pytest.raises(RuntimeError), atomic.atomic_target(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("writer crashed")
    assert target.read_text(encoding="utf-8") == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temp file left behind


def test_figure_does_not_use_a_fixed_temp_name(tmp_path) -> None:
    """Two reports drawing the same figure must not share a temp file: a file at the old fixed temp
    name (another writer's) is left alone, and the figure is a complete PNG."""
    from scoring import figures

    target = tmp_path / "forest_0.0.png"
    other = tmp_path / f".{target.stem}.tmp.png"
    other.write_bytes(b"another writer's half-written figure")
    fig = figures.plt.figure()
    figures._save(fig, target)
    assert other.read_bytes() == b"another writer's half-written figure"
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, other.name])


@pytest.mark.unit
def test_copy_file_atomic_copies_whole_files(tmp_path) -> None:
    src = tmp_path / "src.jsonl"
    src.write_text(json.dumps({"id": 1}) + "\n", encoding="utf-8")
    dst = atomic.copy_file_atomic(src, tmp_path / "snap" / "src.jsonl")
    assert dst.read_text(encoding="utf-8") == src.read_text(encoding="utf-8")
    assert sorted(p.name for p in dst.parent.iterdir()) == ["src.jsonl"]


def _bare_replaces() -> list[str]:
    """Calls that move a file into place without the helper: os.replace/os.rename/shutil.move anywhere,
    and ``x.replace(p)`` / ``x.rename(p)`` with one positional argument (Path's signature; str.replace
    takes two, pandas' rename takes keywords)."""
    hits = []
    for pkg in SOURCE_PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "config/atomic.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                name, base = node.func.attr, node.func.value
                module = base.id if isinstance(base, ast.Name) else None
                if (module in ("os", "shutil") and name in ("replace", "rename", "renames", "move")) or (
                    name in ("replace", "rename") and len(node.args) == 1 and not node.keywords
                ):
                    hits.append(f"{rel}:{node.lineno}: {ast.unparse(node)[:80]}")
    return hits


@pytest.mark.unit
def test_every_file_move_goes_through_the_atomic_helper() -> None:
    assert _bare_replaces() == []
