"""``producer compare A B`` (issue 26): any two answer sets with the trial's own paired statistics, report
and changed items; real runs (the offline engine), real CLI subprocesses.
"""

from __future__ import annotations

import json

import pytest
import yaml

from producer.host.exit_codes import BAD_INPUT, OK
from tests.support.cli import run_cli
from tests.support.offline_config import offline_config_dict, write_offline_config

pytestmark = pytest.mark.slow


def _run(tmp_path, run_id: str, cfg) -> None:
    out = run_cli(["run", "--config", str(cfg), "-w", "1", "--run-id", run_id], cwd=tmp_path,
                  queue=tmp_path / "queue")
    assert out.returncode == OK, out.stdout + out.stderr


def _compare(tmp_path, *args: str):
    return run_cli(["compare", *args], cwd=tmp_path, queue=tmp_path / "queue")


def _sig(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _config(tmp_path, name: str, **over):
    raw = offline_config_dict(tmp_path, **over)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def test_comparing_a_runs_own_conditions_reproduces_its_significance(tmp_path):
    _run(tmp_path, "r1", write_offline_config(tmp_path))
    out = _compare(tmp_path, "r1:control", "r1:treatment")
    assert out.returncode == OK, out.stdout + out.stderr
    mine = tmp_path / "experiments" / "run_r1" / "dry-run-default" / "results" / "significance.json"
    theirs = tmp_path / "experiments" / "compare_r1-control__r1-treatment" / "control_vs_treatment"
    assert _sig(theirs / "results" / "significance.json") == _sig(mine)
    assert (theirs / "reports" / "report.html").is_file() and (theirs / "reports" / "items.html").is_file()


def test_the_demo_twice_at_07_with_two_seeds_compared_condition_by_condition(tmp_path):
    _run(tmp_path, "s1", _config(tmp_path, "s1.yaml", temps=[0.7], samples_per_item={"0.7": 1}, seed=1))
    _run(tmp_path, "s2", _config(tmp_path, "s2.yaml", temps=[0.7], samples_per_item={"0.7": 1}, seed=2))
    out = _compare(tmp_path, "s1", "s2")
    assert out.returncode == OK, out.stdout + out.stderr
    assert out.stdout.count("paired answers, 0 only in A, 0 only in B") == 2
    folder = tmp_path / "experiments" / "compare_s1__s2"
    flips = 0
    for cond in ("control", "treatment"):
        sig = _sig(folder / cond / "results" / "significance.json")
        blocks = [b for per_type in sig["results"].values() for b in per_type.values()]
        assert blocks and all(b["metrics"]["em"]["verdict"]["verdict"] for b in blocks)
        summary = _sig(folder / cond / "results" / "comparison.json")
        assert summary["a"]["condition"] == summary["b"]["condition"] == cond and summary["paired"] == 10
        flips += sum(b["mcnemar"]["n_discordant"] for b in blocks)
        assert (folder / cond / "reports" / "items.html").is_file()
    assert flips > 0  # another seed at T = 0.7 changed some answers: the comparison sees them


def test_bad_inputs_are_one_line_and_write_nothing(tmp_path):
    _run(tmp_path, "r1", write_offline_config(tmp_path))
    only_trivia = _config(tmp_path, "t.yaml", sizes={"squad_v2": 0, "triviaqa": 3, "nq_open": 0})
    only_squad = _config(tmp_path, "s.yaml", sizes={"squad_v2": 3, "triviaqa": 0, "nq_open": 0})
    _run(tmp_path, "tq", only_trivia)
    _run(tmp_path, "sq", only_squad)
    before = sorted(p.name for p in (tmp_path / "experiments").iterdir())
    cases = {
        ("nope", "r1"): "no run 'nope'",
        ("r1:maybe", "r1"): "the condition is control or treatment",
        ("tq", "sq"): "no item in common",
        ("r1/other-trial", "r1"): "no trial 'other-trial'",
    }
    for (a, b), words in cases.items():
        out = _compare(tmp_path, a, b)
        assert out.returncode == BAD_INPUT, (a, b, out.stdout, out.stderr)
        assert words in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert sorted(p.name for p in (tmp_path / "experiments").iterdir()) == before  # nothing written


def test_different_questions_are_refused_unless_allowed(tmp_path):
    _run(tmp_path, "r1", write_offline_config(tmp_path))
    other = tmp_path / "closed_book_other.txt"
    other.write_text("Reply with one word only.", encoding="utf-8")
    raw = offline_config_dict(tmp_path)
    raw["task_instructions"] = {**raw.get("task_instructions", {}), "closed_book": str(other)}
    cfg = tmp_path / "other.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    _run(tmp_path, "r2", cfg)
    refused = _compare(tmp_path, "r1:control", "r2:control")
    assert refused.returncode == BAD_INPUT and "asked different questions of" in refused.stderr
    allowed = _compare(tmp_path, "r1:control", "r2:control", "--allow-different-inputs")
    assert allowed.returncode == OK, allowed.stdout + allowed.stderr
