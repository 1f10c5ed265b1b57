"""Paths and files as Windows users have them: spaces, non-ASCII, drive letters, files held open.

Path rule (config/schema.py, docs/configuration.md): relative config paths resolve against the working
directory; absolute paths, POSIX or drive-letter style, are kept exactly as written.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path, PureWindowsPath

import pytest
import yaml

import config.atomic as atomic
from config.atomic import replace_with_retry, write_csv_atomic, write_json_atomic
from config.errors import ConfigError
from config.schema import load_config, validate_config_dict
from producer.inputs.messages import load_prompt_texts
from producer.runs.layout import RunLayout
from tests.support.paths import ROOT

pytestmark = pytest.mark.unit

WEIRD_DIR = "dir with spaces ü ✓ 你好"


@pytest.mark.parametrize(
    "windows_path",
    [r"C:\models\x.gguf", r"D:\LLM models\Llama 3.1\model Q4_K_M.gguf", r"\\server\share\models\m.gguf",
     r"C:\Users\Zoë\Documents\modèles\m.gguf"],
)
def test_windows_absolute_paths_are_kept_as_written(windows_path: str) -> None:
    raw = {
        "local_engine": "llama_cpp",
        "local_model": windows_path,
        "paths": {"experiments_dir": windows_path.rsplit("\\", 1)[0] + r"\experiments"},
        "prompt_sets": {"default": {"control": windows_path, "treatment": windows_path}},
    }
    cfg = validate_config_dict(raw, "windows.yaml", check_files=False)
    assert cfg.local_model == windows_path
    assert PureWindowsPath(cfg.local_model).is_absolute()
    assert str(cfg.prompt_sets["default"].control) == windows_path
    exp = str(cfg.paths.experiments_dir)
    assert exp == windows_path.rsplit("\\", 1)[0] + r"\experiments"
    assert PureWindowsPath(exp).is_absolute()


def test_windows_path_survives_yaml_round_trip(tmp_path: Path) -> None:
    """Single-quoted YAML keeps backslashes; the loaded value is untouched."""
    path = tmp_path / "cfg.yaml"
    path.write_text("local_engine: llama_cpp\nlocal_model: 'C:\\models\\x.gguf'\n", encoding="utf-8")
    cfg = load_config(path, check_files=False)
    assert cfg.local_model == "C:\\models\\x.gguf"


def _write_prompts(base: Path) -> dict[str, str]:
    prompts = base / "prompts ü ✓"
    prompts.mkdir(parents=True)
    (prompts / "contrôle.txt").write_text("Réponds brièvement. ✓\n", encoding="utf-8")
    (prompts / "traitement 你好.txt").write_text("Dis « je ne sais pas » si tu ne sais pas.\n", encoding="utf-8")
    return {"control": "prompts ü ✓/contrôle.txt", "treatment": "prompts ü ✓/traitement 你好.txt"}


def test_relative_paths_resolve_against_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / WEIRD_DIR
    rel = _write_prompts(root)
    instructions = ROOT / "config" / "task_instructions"
    raw = {
        "local_engine": "dry_run",
        "prompt_sets": {"default": rel},
        "task_instructions": {"open_book": str(instructions / "open_book.txt"),
                              "closed_book": str(instructions / "closed_book.txt")},
    }
    cfg_path = root / "config ✓.yaml"
    cfg_path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")

    monkeypatch.chdir(root)
    cfg = load_config(cfg_path)  # the files exist relative to this working directory
    texts = load_prompt_texts(cfg, "default")
    assert "brièvement. ✓" in texts.system("control")
    assert "« je ne sais pas »" in texts.system("treatment")

    monkeypatch.chdir(tmp_path)  # elsewhere, the same relative paths do not resolve: one-line error
    with pytest.raises(ConfigError) as err:
        load_config(cfg_path)
    assert "prompt_sets.default.control" in str(err.value)
    assert "\n" not in str(err.value)


def test_artifacts_in_a_folder_with_spaces_and_non_ascii(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path / WEIRD_DIR / "experiments", "run-1")  # run ids are ASCII (layout.RUN_ID_RE)
    json_path = write_json_atomic(layout.run_state, {"note": "Zoë ✓", "nan": float("nan")})
    csv_path = write_csv_atomic(layout.artifact("trial é", "t.csv"), ["a", "b"], [["ü", "x,y"], ["你好", None]])
    assert json_path.read_text(encoding="utf-8").count("Zoë ✓") == 1
    assert '"nan": null' in json_path.read_text(encoding="utf-8")
    with csv_path.open(encoding="utf-8", newline="") as fh:
        assert fh.read() == 'a,b\r\nü,"x,y"\r\n你好,\r\n'


class _HeldOpen:
    """``os.replace`` that fails like Windows does while another process (antivirus, a viewer) holds
    the target open: PermissionError for the first ``failures`` calls, then the real replace.

    This is the one acceptable fake in the safety net: Windows' sharing semantics cannot be reproduced
    on Linux, where replacing a file that a reader holds open simply succeeds.
    """

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.real = os.replace

    def __call__(self, src, dst) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise PermissionError(13, "The process cannot access the file because it is being used", str(dst))
        self.real(src, dst)


def test_replace_survives_a_reader_holding_the_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "report.json"
    write_json_atomic(target, {"v": 1})
    held = _HeldOpen(failures=3)
    monkeypatch.setattr(atomic.os, "replace", held)
    with target.open(encoding="utf-8") as reader:  # a reader holds the old file, as on Windows
        write_json_atomic(target, {"v": 2})
        assert '"v": 1' in reader.read()  # the reader still sees a complete old file
    assert held.calls == 4
    assert '"v": 2' in target.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temp file left behind


def test_replace_gives_up_with_the_error_and_leaves_no_temp(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "x.csv"
    held = _HeldOpen(failures=10_000)
    sleeps: list[float] = []
    monkeypatch.setattr(atomic.os, "replace", held)
    monkeypatch.setattr(atomic.time, "sleep", sleeps.append)  # keep the test fast; record the backoff
    with pytest.raises(PermissionError):
        replace_with_retry(tmp_path / "missing.tmp", target, retries=3, delay_s=0.01)
    assert held.calls == 3 and sleeps == [0.01, 0.02]  # growing backoff, no sleep after the last try
    with pytest.raises(PermissionError):
        write_csv_atomic(target, ["a"], [[1]])
    assert held.calls == 3 + atomic.REPLACE_RETRIES
    assert list(tmp_path.iterdir()) == []


def test_suite_runs_with_encoding_warnings_as_errors() -> None:
    """The suite must run as README/.ci/run say: -X warn_default_encoding -W error::EncodingWarning.

    Without the flag, an ``open()`` without ``encoding=`` (cp1252 on Windows) would go unnoticed here.
    """
    assert sys.flags.warn_default_encoding, "run pytest with: python -X warn_default_encoding -W error::EncodingWarning"
    with pytest.raises(EncodingWarning), warnings.catch_warnings():
        warnings.simplefilter("error", EncodingWarning)
        with open(__file__):  # noqa: PLW1514 (deliberately no encoding: must warn)
            pass
