"""A small prepared/ folder and predictions.csv (three datasets, two temperatures) for the scoring tests.

Why shared: the scoring, report, costs and duplicate tests all score these same inputs.
"""

from __future__ import annotations

from pathlib import Path

from config.atomic import write_csv_atomic, write_jsonl_atomic
from config.contract import PREDICTIONS_COLUMNS, build_custom_id

OPEN = [
    {"dataset": "squad_v2", "id": "s1", "context": "Harold built the castle in 1200.", "question": "Who?",
     "answers": ["Harold"], "is_unanswerable": False},
    {"dataset": "squad_v2", "id": "s2", "context": "The castle stands on a hill.", "question": "When burnt?",
     "answers": [], "is_unanswerable": True},
]
CLOSED = [
    {"dataset": "triviaqa", "id": "t1", "question": "Capital of France?", "answers": ["Paris"]},
    {"dataset": "nq_open", "id": "n1", "question": "Letter?", "answers": ["x"]},
]
TEXTS = {  # (item, condition) -> responses for samples 0..2 at T=0.7; T=0.0 uses the first
    ("s1", "control"): ["Harold", "Edward", "Harold"],
    ("s1", "treatment"): ["Harold", "Harold", "Harold"],
    ("s2", "control"): ["In 1300", "I don't know.", "A fire"],
    ("s2", "treatment"): ["I don’t know.", "I don't know", "I do not know."],
    ("t1", "control"): ["Paris", "Lyon", "Unknown"],
    ("t1", "treatment"): ["Paris", "Paris", "Paris"],
    ("n1", "control"): ["x", "x", "x"],
    ("n1", "treatment"): ["y", "x", "I'm not sure."],
}


def make_inputs(root: Path) -> tuple[Path, Path]:
    """Writes ``root``/prepared and ``root``/results/predictions.csv; returns the two folders."""
    prepared = root / "prepared"
    write_jsonl_atomic(prepared / "open_book.jsonl", OPEN)
    write_jsonl_atomic(prepared / "closed_book.jsonl", CLOSED)
    rows = []
    for (item_id, cond), texts in TEXTS.items():
        ds = {"s": "squad_v2", "t": "triviaqa", "n": "nq_open"}[item_id[0]]
        type_ = "open" if ds == "squad_v2" else "closed"
        for temp, k in (("0.0", 1), ("0.7", 3)):
            for s in range(k):
                cid = build_custom_id(ds, item_id, cond, temp, s, type_)
                tokens = ("", "", "") if item_id == "n1" and s == 0 else (100, 5, 105)
                rows.append([cid, ds, item_id, cond, temp, s, type_, f"r{len(rows)}", "stop", texts[s], *tokens])
    results = root / "results"
    write_csv_atomic(results / "predictions.csv", PREDICTIONS_COLUMNS, rows)
    return prepared, results
