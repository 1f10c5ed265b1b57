"""``python -m producer show``: one item's transcript in the terminal or as JSON, the run and trial it
reads chosen as ``status`` chooses them, and one-line errors (exit 2) for what is not there. Real
subprocesses against real runs (dry_run engine: the model is not the point here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.queue_runs import producer, read_jsonl, write_config

ODD = "Which tower \u2192 \u6771\u4eac is tallest?"  # characters a cp1252 console cannot print


def _data_files(tmp: Path) -> dict[str, str]:
    """A SQuAD v2 file and a TriviaQA file whose one item each has the id ``q1`` (an ambiguous bare id)."""
    context = "Tokyo Skytree is a broadcasting tower in Sumida, Tokyo. " * 12  # longer than the terminal view
    squad = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": context, "qas": [
        {"question": ODD, "id": "q1", "answers": [{"text": "Tokyo Skytree", "answer_start": 0}],
         "is_impossible": False}]}]}]}
    trivia = {"Data": [{"Question": "Which planet is known as the Red Planet?", "QuestionId": "q1",
                        "Answer": {"Value": "Mars", "Aliases": ["Mars", "The Red Planet"]}}]}
    paths = {"squad_v2": tmp / "squad.json", "triviaqa": tmp / "trivia.json"}
    paths["squad_v2"].write_text(json.dumps(squad), encoding="utf-8")
    paths["triviaqa"].write_text(json.dumps(trivia), encoding="utf-8")
    return {name: str(p) for name, p in paths.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run A: two trials on files with an ambiguous id; run B (the latest): the bundled samples, one trial."""
    tmp = tmp_path_factory.mktemp("show")
    queue = tmp / "queue"
    cfg_a = write_config(tmp, "a.yaml", local_engine="dry_run", temps=[0.0, 0.7],
                         samples_per_item={"0.0": 1, "0.7": 2}, data={**_data_files(tmp), "nq_open": "sample"},
                         sizes={"squad_v2": 1, "triviaqa": 1, "nq_open": 1},
                         trials=[{"id": "one"}, {"id": "two", "top_p": 0.9}])
    out = producer(["run", "--config", str(cfg_a), "--run-id", "run-a", "--workers", "1"], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    (tmp / "b").mkdir()
    cfg_b = write_config(tmp / "b", local_engine="dry_run")
    out = producer(["run", "--config", str(cfg_b), "--run-id", "run-b", "--workers", "1"], queue)
    assert out.returncode == 0, out.stdout + out.stderr
    return tmp, queue


def show(queue: Path, *args: str, **env: str):
    return run_cli(["show", *args], queue=queue, **env)


def _lines(tmp: Path, run: str, trial: str, key: str) -> list[dict]:
    path = tmp / "experiments" / f"run_{run}" / trial / "results" / "transcripts.jsonl"
    return [ln for ln in read_jsonl(path) if ln["item_key"] == key]


def _one_line_error(out, *words: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    err = out.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in out.stderr, out.stderr
    for word in words:
        assert word in err, err


def test_one_item_in_the_terminal_with_every_sample_side_by_side_on_a_cp1252_console(runs):
    tmp, queue = runs
    out = show(queue, "--run-id", "run-a", "--trial", "one", "squad_v2|q1", PYTHONIOENCODING="cp1252")
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    lines = _lines(tmp, "run-a", "one", "squad_v2|q1")
    assert len(lines) == 3  # temps 0.0 (1 sample) and 0.7 (2 samples)
    assert "squad_v2|q1" in text and "Which tower ? ?? is tallest?" in text  # unprintable -> "?", no crash
    assert "gold:     Tokyo Skytree" in text
    assert "Tokyo Skytree is a broadcasting tower" in text and "chars, --json for all)" in text
    assert text.count("Sumida") < 12  # the passage is trimmed
    for ln in lines:
        assert f"temp {ln['temp']}, sample {ln['sample_index']}" in text
        for cond in ("control", "treatment"):
            assert " ".join(ln[cond]["response"].split()) in text
            assert f"em {ln[cond]['em']:g}  f1 {ln[cond]['f1']:g}" in text
    assert text.count("control    ") == text.count("treatment  ") == 3


def test_json_prints_the_transcript_lines_and_the_whole_passage(runs):
    tmp, queue = runs
    out = show(queue, "--run-id", "run-a", "--trial", "two", "triviaqa|q1", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["run_id"] == "run-a" and data["trial"] == "two" and data["item_key"] == "triviaqa|q1"
    assert data["lines"] == _lines(tmp, "run-a", "two", "triviaqa|q1") and data["context"] is None
    squad = json.loads(show(queue, "--run-id", "run-a", "--trial", "two", "squad_v2|q1", "--json").stdout)
    assert squad["context"].startswith("Tokyo Skytree") and squad["context"].count("Sumida") == 12


def test_latest_run_and_its_only_trial_by_default_and_a_bare_id(runs):
    tmp, queue = runs
    key = read_jsonl(next((tmp / "b" / "experiments" / "run_run-b").glob("*/results/transcripts.jsonl")))[0]["item_key"]
    out = show(queue, key.split("|", 1)[1])
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith(key) and "run run-b" in out.stdout.splitlines()[0]


def test_changed_items_as_a_table_and_as_json(runs):
    from scoring.changed_items import changed_items

    tmp, queue = runs
    rdir = next((tmp / "b" / "experiments" / "run_run-b").glob("*/results"))
    expected = [c.to_dict() for c in changed_items(rdir, rdir.parent.parent / "prepared")]
    assert expected  # the dry_run engine's answers differ between the conditions on these items
    out = show(queue, "--changed", "--json")  # the latest run, its only trial
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == expected
    table = show(queue, "--run-id", "run-b", "--changed")
    assert table.returncode == 0, table.stderr
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["temp", "type", "change", "item", "question", "control", "treatment"]
    items = len({(e["temp"], e["type"], e["item_key"]) for e in expected})  # an item may change in two ways
    assert len(rows) == len(expected) + 2 and rows[-1].startswith(f"{items} changed item")
    for row, item in zip(rows[1:-1], expected, strict=True):
        assert row.split()[:4] == [item["temp"], item["type"], item["change"], item["item_key"]]


def test_bad_input_is_one_line_and_exit_2(runs):
    _, queue = runs
    _one_line_error(show(queue, "--run-id", "run-a", "squad_v2|q1"), "2 trials", "one, two", "--trial")
    _one_line_error(show(queue, "--run-id", "run-a", "--trial", "three", "q1"), "no trial 'three'", "one, two")
    _one_line_error(show(queue, "--run-id", "run-a", "--trial", "one", "q1"), "ambiguous",
                    "squad_v2|q1, triviaqa|q1")
    _one_line_error(show(queue, "--run-id", "run-a", "--trial", "one", "nope"), "no item 'nope'")
    _one_line_error(show(queue, "--run-id", "no-such-run", "q1"), "unknown run id")
    _one_line_error(show(queue, "--run-id", "../up", "q1"), "invalid run id")
    _one_line_error(show(queue), "ITEM_ID or --changed")
    _one_line_error(show(queue, "q1", "--changed"), "ITEM_ID or --changed")


def test_a_run_not_finished_yet_says_so_in_one_line(tmp_path):
    cfg = write_config(tmp_path, local_engine="dry_run")
    queue = tmp_path / "queue"
    assert producer(["enqueue", "--config", str(cfg), "--run-id", "early"], queue).returncode == 0
    _one_line_error(show(queue, "--run-id", "early", "q1"), "no transcripts", "status --run-id early")
    _one_line_error(show(queue, "--changed"), "no scores yet")
