"""Ten kinds of bad input, each through the real CLI: exit status 2 and one line naming the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.paths import FIXTURES
from tests.support.workdirs import make_workdir

DEMO_HEAD = "backend: local\nlocal_engine: dry_run\nsizes: {squad_v2: 3, triviaqa: 3, nq_open: 3}\n"

CASES = {
    "unknown_key": (DEMO_HEAD + "temperatures: [0.0]\n", "plan", ["temperatures: unknown key (did you mean 'temps'?)"]),
    "wrong_type": (DEMO_HEAD + "n_ctx: lots\n", "plan", ["n_ctx:", "integer", "'lots'"]),
    "negative_tokens": (
        DEMO_HEAD + "max_new_tokens: {closed_book: -5, open_book: 32}\n",
        "plan",
        ["max_new_tokens.closed_book:", "greater than or equal to 1", "-5"],
    ),
    "missing_prompt_file": (
        DEMO_HEAD + "prompt_sets:\n  default: {control: config/prompts/nope.txt, "
        "treatment: config/prompts/treatment_system.txt}\n",
        "plan",
        ["prompt_sets.default.control: file not found: config/prompts/nope.txt"],
    ),
    "temp_without_samples": (
        DEMO_HEAD + 'temps: [0.0, 0.7]\nsamples_per_item: {"0.0": 1}\n',
        "plan",
        ["samples_per_item: temperature 0.7 has no entry"],
    ),
    "duplicate_prompt_set": (
        DEMO_HEAD + "prompt_sets:\n"
        "  default: {control: config/prompts/control_system.txt, treatment: config/prompts/treatment_system.txt}\n"
        "  default: {control: config/prompts/control_system.txt, "
        "treatment: config/prompts/operational_only_treatment.txt}\n",
        "plan",
        ["prompt_sets.default: duplicate key on line 6 (first on line 5)"],
    ),
    "bad_engine": (
        "backend: local\nlocal_engine: vllm\nlocal_model: m\n",
        "plan",
        ["local_engine:", "'llama_cpp'", "'dry_run'", "'vllm'"],
    ),
    "pipe_in_item_id": (
        DEMO_HEAD + "data: {squad_v2: DATA/squad_v2_pipe_id.json}\n",
        "prepare",
        ["squad_v2:", "squad_v2_pipe_id.json", "item id 'bad|id' contains '|'"],
    ),
    "unreadable_data_file": (
        DEMO_HEAD + "data: {triviaqa: DATA/a_folder.json}\n",
        "prepare",
        ["triviaqa: data path is a folder, not a file:", "a_folder.json"],
    ),
    "missing_data_file": (
        DEMO_HEAD + "data: {triviaqa: DATA/no_such_file.json}\n",
        "prepare",
        ["triviaqa: data file not found:", "no_such_file.json"],
    ),
    "malformed_jsonl_line": (
        DEMO_HEAD + "data: {nq_open: DATA/nq_open_malformed.jsonl}\n",
        "prepare",
        ["nq_open:", "nq_open_malformed.jsonl: line 2: malformed JSON"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_gives_exit_2_and_one_line(case: str, tmp_path: Path) -> None:
    work = make_workdir(tmp_path)
    data = work / "fixtures"
    shutil.copytree(FIXTURES, data)
    (data / "a_folder.json").mkdir()
    text, command, expected = CASES[case]
    (work / "bad.yaml").write_text(text.replace("DATA/", "fixtures/"), encoding="utf-8")
    proc = run_cli([command, "--config", "bad.yaml"], cwd=work)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in expected:
        assert fragment in lines[0], lines[0]
    if command == "plan":
        assert lines[0].startswith("config error: bad.yaml: ")
    assert not (work / "data" / "prepared" / "open_book.jsonl").exists()


def test_data_errors_also_stop_plan(tmp_path: Path) -> None:
    """plan reads local files in memory, so a malformed line is reported before any run starts."""
    work = make_workdir(tmp_path)
    proc = run_cli(["plan", "--config", "demo", "--data", f"nq_open={FIXTURES / 'nq_open_malformed.jsonl'}"], cwd=work)
    assert proc.returncode == 2
    assert "line 2: malformed JSON" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("nq_open", "expected NAME=SOURCE"), ("squad=sample", "unknown dataset 'squad'")],
)
def test_bad_data_override(value: str, fragment: str, tmp_path: Path) -> None:
    proc = run_cli(["plan", "--config", "demo", "--data", value], cwd=make_workdir(tmp_path))
    assert proc.returncode == 2 and fragment in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_config_file(tmp_path: Path) -> None:
    proc = run_cli(["plan", "--config", "nope.yaml"], cwd=make_workdir(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.startswith("config error: nope.yaml: <file>: not found")
