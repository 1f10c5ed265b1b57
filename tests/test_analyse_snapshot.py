"""``analyse`` of a run reads that run's own items, never the shared ``data/prepared`` (issue 30, item 2).

Why: the workers score against ``experiments/run_X/prepared`` (frozen at enqueue); ``analyse`` read
``paths.prepared_dir``, which another config may have prepared since: run A's scores changed with
run B's gold answers (or it exited 2, "predicted item(s) not in the prepared items").
"""

from __future__ import annotations

import json

import pytest

from tests.support.cli import run_cli
from tests.support.offline_config import write_offline_config

pytestmark = pytest.mark.slow


def test_analyse_of_an_old_run_ignores_items_prepared_since(tmp_path):
    cfg = write_offline_config(tmp_path)
    queue = tmp_path / "queue"
    first = run_cli(["run", "--config", str(cfg), "-w", "1", "--run-id", "a"], cwd=tmp_path, queue=queue)
    assert first.returncode == 0, first.stdout + first.stderr
    results = tmp_path / "experiments" / "run_a" / "dry-run-default" / "results"
    scores = (results / "per_item_scores.csv").read_text(encoding="utf-8")
    shared = tmp_path / "data" / "prepared" / "closed_book.jsonl"
    items = [json.loads(line) for line in shared.read_text(encoding="utf-8").splitlines()]
    for item in items:  # another config prepared different gold answers in between
        item["answers"] = ["something else entirely"]
    shared.write_text("".join(json.dumps(i) + "\n" for i in items[:-1]), encoding="utf-8")  # and one item fewer
    again = run_cli(["analyse", "--results-dir", str(results)], cwd=tmp_path, queue=queue)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (results / "per_item_scores.csv").read_text(encoding="utf-8") == scores
    assert "something else entirely" not in (results.parent / "reports" / "items.html").read_text(encoding="utf-8")
