"""One file may mix open- and closed-book questions: ``type: mixed`` and a ``type`` on each row
(issue 29, item 3).

Why: a researcher's own question set often holds both kinds; splitting it into two files and two
dataset names was busywork. Each row is prepared, asked and scored as its own type.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.schema import validate_config_dict
from producer.inputs.datasets.data_errors import DataError
from producer.inputs.messages import load_prompt_texts
from producer.inputs.prepare import ensure_prepared
from producer.inputs.requests_build import iter_trial_requests
from producer.planning.plan import make_plan, run_size
from producer.runs.trials import expand_trials
from tests.support.offline_config import offline_config_dict

pytestmark = pytest.mark.unit

ROWS = [
    {"id": "o1", "type": "open_book", "context": "Canberra is the capital of Australia.",
     "question": "What is the capital of Australia?", "answers": ["Canberra"]},
    {"id": "o2", "type": "open_book", "context": "Canberra is the capital of Australia.",
     "question": "Who founded Canberra?", "answers": [], "unanswerable": True},
    {"id": "c1", "type": "closed_book", "question": "What is the capital of France?", "answers": ["Paris"]},
]


def _cfg(tmp_path: Path, rows: list[dict]):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return validate_config_dict(offline_config_dict(
        tmp_path, sizes={"squad_v2": 0, "triviaqa": 0, "nq_open": 0},
        custom_datasets={"mine": {"path": str(path), "type": "mixed"}}))


def test_each_row_is_prepared_asked_and_counted_as_its_own_type(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, ROWS)
    prepared = ensure_prepared(cfg)
    open_rows = [json.loads(x) for x in prepared.open_book.read_text(encoding="utf-8").splitlines()]
    closed_rows = [json.loads(x) for x in prepared.closed_book.read_text(encoding="utf-8").splitlines()]
    assert sorted(r["id"] for r in open_rows) == ["o1", "o2"] and [r["id"] for r in closed_rows] == ["c1"]
    assert {r["type"] for r in open_rows} == {"open"} and closed_rows[0]["type"] == "closed"
    trial = expand_trials(cfg)[0]
    reqs = list(iter_trial_requests(cfg, trial, prepared.items, load_prompt_texts(cfg, trial.prompt_set)))
    types = {(r.custom_id.split("|")[1], r.type) for r in reqs}
    assert types == {("o1", "open"), ("o2", "open"), ("c1", "closed")}
    user = next(r for r in reqs if r.custom_id.startswith("mine|c1|")).body["messages"][1]["content"]
    assert "CONTEXT" not in user  # a closed-book row is asked without a passage
    plan = make_plan(cfg, tmp_path / "cfg.yaml")
    assert run_size(plan)[0] == 6  # 3 items x 2 conditions


def test_a_mixed_row_without_its_type_is_one_line(tmp_path: Path) -> None:
    rows = [dict(ROWS[0]), {k: v for k, v in ROWS[2].items() if k != "type"}]
    cfg = _cfg(tmp_path, rows)
    with pytest.raises(DataError, match=r"line 2: .*'type'.*open_book or closed_book"):
        ensure_prepared(cfg)


def test_type_on_a_row_of_a_single_type_dataset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(ROWS[2]) + "\n", encoding="utf-8")
    cfg = validate_config_dict(offline_config_dict(
        tmp_path, sizes={"squad_v2": 0, "triviaqa": 0, "nq_open": 0},
        custom_datasets={"one": {"path": str(path), "type": "closed_book"}}))
    with pytest.raises(DataError, match="'type' on a row is for a dataset declared type: mixed"):
        ensure_prepared(cfg)
