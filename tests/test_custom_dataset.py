"""Your own dataset (issue 16.4): a generic question-answer JSONL declared under ``custom_datasets``.

Real parts only: the real CLI in a subprocess (prepare, plan, doctor, run with the dry-run engine:
the model is not the point here), real files, the real scorer and statistics. A user's dataset must
flow through prepare, requests, scoring, statistics, manifests and the report exactly like a built-in
one, and a bad row must be one line naming the file and the line, never a traceback.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from config.contract import PREDICTIONS_COLUMNS, build_custom_id, parse_custom_id
from config.errors import ConfigError
from config.schema import load_config, validate_config_dict
from producer.inputs.datasets.data_errors import DataError
from producer.inputs.prepare import ensure_prepared
from tests.support.cli import run_cli
from tests.support.offline_config import offline_config_dict, write_offline_config
from tests.support.paths import ROOT

EXAMPLE = ROOT / "config" / "examples" / "my_faq.jsonl"
CAPITALS = [  # a closed-book dataset of one's own, with aliases
    {"id": "cap-1", "question": "What is the capital of France?", "answers": ["Paris"]},
    {"id": "cap-2", "question": "What is the capital of Japan?", "answers": ["Tokyo", "Tōkyō"]},
    {"id": 3, "question": "What is the capital of the United States?", "answers": ["Washington, D.C.", "Washington"]},
    {"id": "cap-4", "question": "What is the capital of Australia?", "answers": ["Canberra"],
     "context": "a closed-book dataset may keep its passages: they are not shown"},
]


def write_jsonl(path: Path, rows: list[Any], bom: bool = False) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def custom_config(tmp_path: Path, custom: dict[str, Any], **overrides: Any) -> Path:
    overrides.setdefault("sizes", {"squad_v2": 3, "triviaqa": 2, "nq_open": 0})
    return write_offline_config(tmp_path, custom_datasets=custom, **overrides)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def one_line(proc: Any, code: int, *words: str) -> str:
    """The command failed with ``code`` and one line on stderr holding every word, no traceback."""
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stdout, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, (word, err)
    return err


def test_custom_datasets_are_prepared_run_scored_and_reported(tmp_path: Path) -> None:
    capitals = write_jsonl(tmp_path / "capitals.jsonl", CAPITALS, bom=True)  # Notepad's BOM is fine
    cfg = custom_config(tmp_path, {"my_faq": {"path": str(EXAMPLE), "type": "open_book", "size": None},
                                   "capitals": {"path": str(capitals), "type": "closed_book", "size": 3}})

    plan = run_cli(["plan", "--config", str(cfg), "--json"], cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    planned = {d["name"]: d for d in json.loads(plan.stdout)["datasets"]}
    assert (planned["my_faq"]["type"], planned["my_faq"]["selected"]) == ("open", 10)
    assert (planned["capitals"]["type"], planned["capitals"]["selected"], planned["capitals"]["available"]) == \
        ("closed", 3, 4)

    run = run_cli(["run", "--config", str(cfg)], cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "open-book questions (SQuAD v2, my_faq)" in run.stdout  # the headline names the user's dataset

    prepared = tmp_path / "data" / "prepared"
    open_items = [i for i in read_jsonl(prepared / "open_book.jsonl") if i["dataset"] == "my_faq"]
    closed_items = [i for i in read_jsonl(prepared / "closed_book.jsonl") if i["dataset"] == "capitals"]
    assert len(open_items) == 10 and len(closed_items) == 3
    assert sorted(i["id"] for i in open_items if i["is_unanswerable"]) == ["bus-3", "lib-4", "tea-3"]
    assert all(set(i) == {"dataset", "id", "question", "answers"} for i in closed_items)  # no context closed-book
    manifest = json.loads((prepared / "prepared_manifest.json").read_text(encoding="utf-8"))
    assert manifest["sources"]["my_faq"]["kind"] == "custom" and manifest["sources"]["capitals"]["items_selected"] == 3

    trial = next((tmp_path / "experiments").glob("run_*/*/results"))
    with open(trial / "predictions.csv", encoding="utf-8", newline="") as fh:
        preds = list(csv.DictReader(fh))
    ids = [parse_custom_id(r["custom_id"]) for r in preds]
    assert {(c.dataset, c.type) for c in ids} == {("squad_v2", "open"), ("my_faq", "open"),
                                                  ("triviaqa", "closed"), ("capitals", "closed")}
    assert sum(c.dataset == "my_faq" for c in ids) == 20 and sum(c.dataset == "capitals" for c in ids) == 6

    with open(trial / "per_item_scores.csv", encoding="utf-8", newline="") as fh:
        keys = {(r["item_key"], r["type"]) for r in csv.DictReader(fh)}
    assert ("my_faq|lib-4", "open") in keys and sum(k.startswith("capitals|") for k, _ in keys) == 3

    sig = json.loads((trial / "significance.json").read_text(encoding="utf-8"))
    block = sig["results"]["0.0"]
    assert set(block["open"]["subgroups"]["dataset"]) == {"squad_v2", "my_faq"}
    assert set(block["closed"]["subgroups"]["dataset"]) == {"triviaqa", "capitals"}
    assert block["open"]["subgroups"]["dataset"]["my_faq"]["n_items"] == 10

    counts = json.loads((trial / "trial_manifest.json").read_text(encoding="utf-8"))["counts"]["0.0"]["control"]
    assert (counts["open"], counts["closed"]) == (13, 5)

    report = (trial.parent / "reports" / "report.md").read_text(encoding="utf-8")
    subgroup_rows = [line for line in report.splitlines() if line.startswith(("| my_faq |", "| capitals |"))]
    assert any("false answer" in r for r in subgroup_rows if r.startswith("| my_faq"))
    assert any("EM" in r for r in subgroup_rows if r.startswith("| capitals"))
    assert "closed-book questions (TriviaQA, capitals)" in report
    html = (trial.parent / "reports" / "report.html").read_text(encoding="utf-8")
    assert "my_faq" in html and "capitals" in html


@pytest.mark.unit
def test_custom_items_are_scored_by_the_same_rules(tmp_path: Path) -> None:
    """Normalisation, aliases, abstention and unanswerable questions: what the built-in datasets get."""
    from scoring.score_predictions import score_predictions

    capitals = write_jsonl(tmp_path / "capitals.jsonl", CAPITALS)
    raw = offline_config_dict(tmp_path, sizes={"squad_v2": 0, "triviaqa": 0, "nq_open": 0},
                              custom_datasets={"faq": {"path": str(EXAMPLE), "type": "open_book"},
                                               "capitals": {"path": str(capitals), "type": "closed_book"}})
    cfg = validate_config_dict(raw)
    prepared = ensure_prepared(cfg)
    assert prepared.counts == {"squad_v2": 0, "triviaqa": 0, "nq_open": 0, "faq": 10, "capitals": 4}
    answers = {  # (dataset, id, type): (response, expected em, abstained, false_answer)
        ("faq", "tea-1", "open"): ("The Camellia Sinensis.", 1.0, 0, 0),  # case, article, punctuation
        ("faq", "lib-3", "open"): ("two times", 1.0, 0, 0),  # an alias
        ("faq", "bus-1", "open"): ("every 20 minutes", 0.0, 0, 0),
        ("faq", "lib-4", "open"): ("I don\u2019t know.", 1.0, 1, 0),  # unanswerable + abstain
        ("faq", "tea-3", "open"): ("China", 0.0, 0, 1),  # unanswerable + an answer: a false answer
        ("capitals", "cap-2", "closed"): ("tokyo", 1.0, 0, None),
        ("capitals", "3", "closed"): ("Washington", 1.0, 0, None),
        ("capitals", "cap-1", "closed"): ("I don't know", 0.0, 1, None),
    }
    pred = tmp_path / "predictions.csv"
    with open(pred, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=PREDICTIONS_COLUMNS)
        writer.writeheader()
        for (ds, item_id, type_), (text, *_rest) in answers.items():
            for cond in ("control", "treatment"):
                cid = build_custom_id(ds, item_id, cond, 0.0, 0, type_)
                writer.writerow({"custom_id": cid, "dataset": ds, "item_id": item_id, "condition": cond,
                                 "temp": "0.0", "sample_index": 0, "type": type_, "request_id": cid,
                                 "finish_reason": "stop", "response_text": text})
    out = score_predictions(pred, Path(cfg.paths.prepared_dir), tmp_path, cfg)
    with open(out, encoding="utf-8", newline="") as fh:
        rows = {(r["item_key"], r["condition"]): r for r in csv.DictReader(fh)}
    for (ds, item_id, _type), (_text, em, abstained, false_answer) in answers.items():
        row = rows[(f"{ds}|{item_id}", "control")]
        assert float(row["em"]) == em, (ds, item_id, row)
        assert float(row["abstain_rate"]) == abstained, (ds, item_id, row)
        assert (row["false_answer_rate"] == "" if false_answer is None
                else float(row["false_answer_rate"]) == false_answer), (ds, item_id, row)


OPEN = {"id": "q1", "question": "Who?", "answers": ["Ada"], "context": "Ada wrote it."}
BAD_ROWS = [  # (rows, declared type, line named in the error, words of the error)
    ([OPEN, '{"id": "q2", "question": "Who?"'], "open_book", 2, "malformed JSON"),
    ([OPEN, {"id": "q2", "answers": ["x"], "context": "c"}], "open_book", 2, "missing field 'question'"),
    ([OPEN, {"id": "q2", "question": "Who?", "answers": "Ada", "context": "c"}], "open_book", 2,
     "'answers' must be a list"),
    ([OPEN, {"id": "q2", "question": "Who?", "answers": [1815], "context": "c"}], "open_book", 2,
     "answers[0] must be a string"),
    ([OPEN, {"id": "q2", "question": "?", "answers": ["a"], "context": "c"}, {**OPEN, "question": "Again?"}],
     "open_book", 3, "duplicate id 'q1' (first on line 1)"),
    ([OPEN, {"id": "q2", "question": "Who?", "answers": ["Ada"]}], "open_book", 2, "missing field 'context'"),
    ([{"id": "q1", "question": "Who?", "answers": [], "unanswerable": True}], "closed_book", 1,
     "'unanswerable' is only for open_book"),
    ([OPEN, {**OPEN, "id": "a|b"}], "open_book", 2, "contains '|'"),
    ([OPEN, {**OPEN, "id": "q2", "answers": []}], "open_book", 2, "mark the question 'unanswerable': true"),
    ([OPEN, {**OPEN, "id": "q2", "unanswerable": True}], "open_book", 2, "marked unanswerable but has answers"),
    ([OPEN, {**OPEN, "id": "q2", "unanswerable": "yes"}], "open_book", 2, "must be true or false"),
    ([OPEN, {**OPEN, "id": "q2", "anwsers": ["Ada"]}], "open_book", 2, "unknown field 'anwsers'"),
    ([OPEN, {**OPEN, "id": None}], "open_book", 2, "field 'id' must be a string"),
    ([{"id": "q1", "question": "Who?", "answers": [" "]}], "closed_book", 1, "no answer"),
    ([OPEN, "[1, 2]"], "open_book", 2, "expected a JSON object"),
]


@pytest.mark.unit
@pytest.mark.parametrize("rows,book,line,words", BAD_ROWS, ids=[w for *_, w in BAD_ROWS])
def test_a_bad_row_is_one_line_naming_file_and_line(tmp_path: Path, rows: list[Any], book: str, line: int,
                                                     words: str) -> None:
    path = write_jsonl(tmp_path / "my_faq.jsonl", rows)
    cfg = validate_config_dict(offline_config_dict(
        tmp_path, custom_datasets={"my_faq": {"path": str(path), "type": book}}))
    with pytest.raises(DataError) as err:
        ensure_prepared(cfg)
    message = str(err.value)
    assert message.startswith(f"my_faq: {path}: line {line}: "), message
    assert words in message and "\n" not in message and err.value.exit_code == 2
    assert not (tmp_path / "data" / "prepared" / "open_book.jsonl").exists()  # nothing half-prepared


def test_bad_rows_stop_prepare_plan_and_doctor_with_one_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "my_faq.jsonl", [OPEN, OPEN])
    cfg = custom_config(tmp_path, {"my_faq": {"path": str(path), "type": "open_book"}})
    for command in ("prepare", "plan"):
        one_line(run_cli([command, "--config", str(cfg)], cwd=tmp_path), 2,
                 f"error: my_faq: {path}: line 2: duplicate id 'q1' (first on line 1)")
    doctor = run_cli(["doctor", "--config", str(cfg)], cwd=tmp_path)
    assert doctor.returncode == 1 and "Traceback" not in doctor.stdout + doctor.stderr
    data = [line for line in doctor.stdout.splitlines() if "] data: " in line]
    assert any("FAIL" in line and f"my_faq: {path}: line 2: duplicate id" in line for line in data), data
    missing = custom_config(tmp_path, {"my_faq": {"path": str(tmp_path / "nope.jsonl"), "type": "open_book"}})
    one_line(run_cli(["prepare", "--config", str(missing)], cwd=tmp_path), 2, "my_faq", "nope.jsonl", "not found")
    assert not (tmp_path / "experiments").exists() and not (tmp_path / "data" / "prepared" / "open_book.jsonl").exists()


@pytest.mark.unit
@pytest.mark.parametrize("name,words", [
    ("squad_v2", "collides with the built-in dataset 'squad_v2'"),
    ("NQ_Open", "collides with the built-in dataset 'nq_open'"),
    ("my|faq", "must start with a letter"),
    ("9lives", "must start with a letter"),
    ("my faq", "must start with a letter"),
])
def test_dataset_names_that_collide_or_break_custom_ids_are_refused(tmp_path: Path, name: str, words: str) -> None:
    raw = offline_config_dict(tmp_path, custom_datasets={name: {"path": str(EXAMPLE), "type": "open_book"}})
    with pytest.raises(ConfigError) as err:
        validate_config_dict(raw, "my.yaml")
    assert str(err.value).startswith("config error: my.yaml: custom_datasets: ") and words in str(err.value)


def test_config_errors_of_custom_datasets_are_one_line(tmp_path: Path) -> None:
    cases = [
        ({"faq": {"path": str(EXAMPLE), "type": "open"}}, "custom_datasets.faq.type: Input should be 'open_book', 'closed_book' or 'mixed'"),
        ({"faq": {"path": str(EXAMPLE), "type": "open_book", "sise": 2}}, "custom_datasets.faq.sise: unknown key "
                                                                             "(did you mean 'size'?)"),
        ({"faq": {"type": "open_book"}}, "custom_datasets.faq.path: Field required"),
        ({"faq": {"path": str(EXAMPLE), "type": "open_book"}, "FAQ": {"path": str(EXAMPLE), "type": "open_book"}},
         "collides with the custom dataset 'faq'"),
    ]
    for custom, words in cases:
        with pytest.raises(ConfigError) as err:
            validate_config_dict(offline_config_dict(tmp_path, custom_datasets=custom), "my.yaml")
        assert words in str(err.value), str(err.value)
    # only the user's dataset: the built-in sizes may all be 0; all of them 0 is still nothing to run
    only = offline_config_dict(tmp_path, sizes={"squad_v2": 0, "triviaqa": 0, "nq_open": 0},
                               custom_datasets={"faq": {"path": str(EXAMPLE), "type": "open_book"}})
    assert validate_config_dict(only).dataset_names()[-1] == "faq"
    only["custom_datasets"]["faq"]["size"] = 0
    cfg = write_offline_config(tmp_path, **{k: v for k, v in only.items() if k in ("sizes", "custom_datasets")})
    one_line(run_cli(["plan", "--config", str(cfg)], cwd=tmp_path), 2, "sizes: every dataset has size 0")


@pytest.mark.unit
def test_example_config_and_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented example loads and its file is a clean dataset with unanswerables and shared contexts."""
    from producer.inputs.datasets.sources import load_items, resolve_source

    monkeypatch.chdir(ROOT)
    cfg = load_config("config/eval_config.custom.yaml")
    assert cfg.local_model == "smollm2" and cfg.dataset_type("my_faq") == "open"
    items = load_items(resolve_source(cfg, "my_faq"))
    assert len(items) == 10 and sum(i["is_unanswerable"] for i in items) == 3
    assert len({i["context"] for i in items}) < len(items)


@pytest.mark.unit
def test_prepared_custom_items_are_reused_until_the_file_or_the_type_changes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mine.jsonl", [OPEN, {**OPEN, "id": "q2", "question": "Who else?"}])
    raw = offline_config_dict(tmp_path, sizes={"squad_v2": 1, "triviaqa": 1, "nq_open": 0},
                              custom_datasets={"mine": {"path": str(path), "type": "open_book"}})
    first = ensure_prepared(validate_config_dict(raw))
    assert not first.reused and first.counts["mine"] == 2
    assert ensure_prepared(validate_config_dict(raw)).reused
    assert ensure_prepared(validate_config_dict(raw), limit_items=1).counts["mine"] == 1  # --limit-items caps it
    write_jsonl(path, [OPEN, {**OPEN, "id": "q2", "question": "Who else?"}, {**OPEN, "id": "q3"}])
    changed = ensure_prepared(validate_config_dict(raw))
    assert not changed.reused and changed.counts["mine"] == 3
    raw["custom_datasets"]["mine"]["type"] = "closed_book"  # the same file asked closed-book: context unused
    closed = ensure_prepared(validate_config_dict(raw))
    assert not closed.reused
    assert [i["dataset"] for i in read_jsonl(closed.closed_book)].count("mine") == 3
    assert "mine" not in {i["dataset"] for i in read_jsonl(closed.open_book)}


@pytest.mark.unit
def test_every_bad_row_is_named_in_one_pass(tmp_path: Path) -> None:
    """Issue 29, item 3: three mistakes took three runs; now one error names them all (up to 20)."""
    rows = [OPEN, {"id": "q2", "answers": ["x"], "context": "c"}, '{"id": "q3"', {**OPEN, "id": "q4", "anwsers": []},
            {**OPEN, "id": "q5"}]
    path = write_jsonl(tmp_path / "my_faq.jsonl", rows)
    cfg = validate_config_dict(offline_config_dict(
        tmp_path, custom_datasets={"my_faq": {"path": str(path), "type": "open_book"}}))
    with pytest.raises(DataError) as err:
        ensure_prepared(cfg)
    message = str(err.value)
    assert message.startswith(f"my_faq: {path}: 3 bad rows: line 2: missing field 'question'"), message
    assert "line 3: malformed JSON" in message and "line 4: unknown field 'anwsers'" in message
    assert "\n" not in message and "line 5" not in message  # q5 is a good row

    many = write_jsonl(tmp_path / "many.jsonl", [{"id": f"q{i}"} for i in range(25)])
    cfg = validate_config_dict(offline_config_dict(
        tmp_path, custom_datasets={"many": {"path": str(many), "type": "closed_book"}}))
    with pytest.raises(DataError) as err:
        ensure_prepared(cfg)
    assert "25 bad rows" in str(err.value) and str(err.value).endswith("; and 5 more")
