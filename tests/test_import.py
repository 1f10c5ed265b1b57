"""``producer import FILE`` (issue 26): Inspect AI (.eval, .json), lm-evaluation-harness samples and promptfoo
exports become read-only runs in our layout; bad input is one line, exit 2, nothing written. In-process
(click's CliRunner), on the real-format fixtures of tests/fixtures/imports/.
"""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.cli import main
from producer.host.exit_codes import BAD_INPUT, OK
from tests.support.paths import ROOT

pytestmark = pytest.mark.unit

FIXTURES = ROOT / "tests" / "fixtures" / "imports"
EVAL = FIXTURES / "inspect_triviaqa.eval"
INSPECT_JSON = FIXTURES / "inspect_squad_v2.json"
LM_EVAL = FIXTURES / "samples_nq_open_2026-12-05T08-00-00.000000.jsonl"
PROMPTFOO = FIXTURES / "promptfoo_triviaqa.json"


@pytest.fixture()
def here(tmp_path, monkeypatch):
    """A fresh working folder with its own (empty) queue: experiments/ lands here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(tmp_path / "queue"))
    return tmp_path


def _cli(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="python -m producer")


def _run_dir(here: Path, run_id: str) -> Path:
    return here / "experiments" / f"run_{run_id}"


def _per_item(results: Path) -> dict[str, float]:
    with open(results / "per_item_scores.csv", encoding="utf-8", newline="") as fh:
        return {r["item_key"]: float(r["em"]) for r in csv.DictReader(fh)}


@pytest.mark.parametrize(("fixture", "tool", "dataset", "scorer", "em"), [
    (EVAL, "inspect_ai", "triviaqa", "ours",
     {"sample_tqa_001": 1.0, "sample_tqa_002": 0.0, "sample_tqa_003": 1.0, "sample_tqa_004": 1.0}),
    (INSPECT_JSON, "inspect_ai", "squad_v2", "ours",  # 330 metres asked, "300 metres" answered: em 0
     {"51dcd4d8c52b1edf2c512217": 1.0, "dafcb04dba86111543046533": 1.0, "beef3b11f77d1c3b7ae6adf5": 0.0,
      "9a9c5a502de20a5194d174a2": 1.0}),
    (LM_EVAL, "lm-evaluation-harness", "nq_open", "ours", None),
    (PROMPTFOO, "promptfoo", "triviaqa", "foreign",  # promptfoo's own scores: Marlowe failed its assertion
     {"sample_tqa_001": 1.0, "sample_tqa_002": 1.0, "sample_tqa_003": 0.0}),
])
def test_each_format_becomes_a_run_in_our_layout(here, fixture, tool, dataset, scorer, em):
    out = _cli("import", str(fixture), "--run-id", "imp")
    assert out.exit_code == OK, out.output
    run = _run_dir(here, "imp")
    results = run / f"imported-{tool}" / "results"
    manifest = json.loads((results / "trial_manifest.json").read_text(encoding="utf-8"))
    record = manifest["imported"]
    assert record["tool"] == tool and record["dataset"] == dataset and record["scorer"] == scorer
    assert record["sha256"] == hashlib.sha256(fixture.read_bytes()).hexdigest()
    assert manifest["stage_status"]["parsed"]["status"] == "done"
    assert manifest["stage_status"]["parsed"]["artifacts"][0] == (results / "predictions.csv").resolve().as_posix()
    assert json.loads((run / "run_state.json").read_text(encoding="utf-8"))["imported"] == record
    with open(results / "predictions.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {r["condition"] for r in rows} == {"control"} and {r["dataset"] for r in rows} == {dataset}
    assert all(r["custom_id"] == "|".join([r["dataset"], r["item_id"], "control", r["temp"], r["sample_index"],
                                          r["type"]]) for r in rows)
    scores = _per_item(results)
    if em is not None:
        assert scores == {f"{dataset}|{k}": v for k, v in em.items()}
    else:  # NQ-Open ids are our hash of the question: the same items as our runs of the bundled sample
        from producer.inputs.datasets.items import question_hash_id

        assert set(scores) == {f"nq_open|{question_hash_id(q)}" for q in (
            "who wrote the novel pride and prejudice", "what is the capital city of australia",
            "how many players does a soccer team have on the field")}
        assert sorted(scores.values()) == [0.0, 1.0, 1.0]  # Sydney is not Canberra
    lines = [json.loads(x) for x in (results / "transcripts.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(rows) and all(line["control"]["response"] for line in lines)
    assert (run / "effective_config.yaml").read_text(encoding="utf-8").splitlines()[1].startswith("# IMPORTED from")


def test_show_reads_an_imported_run_and_resume_refuses_it(here):
    assert _cli("import", str(PROMPTFOO), "--run-id", "pf").exit_code == OK
    shown = _cli("show", "--run-id", "pf", "sample_tqa_003", "--json")
    assert shown.exit_code == OK, shown.output
    line = json.loads(shown.output)["lines"][0]
    assert line["control"]["response"] == "Christopher Marlowe" and line["control"]["em"] == 0.0
    terminal = _cli("show", "--run-id", "pf", "sample_tqa_003")
    assert terminal.exit_code == OK and "Christopher Marlowe" in terminal.output
    assert "treatment" not in terminal.output  # an imported run has one answer set: no "no result" line
    before = sorted(p.relative_to(here) for p in here.rglob("*"))
    resumed = _cli("run", "--resume", "pf")
    assert resumed.exit_code == BAD_INPUT
    assert resumed.output.strip().splitlines() == [
        "error: run pf was imported from promptfoo (promptfoo_triviaqa.json): it is read-only, so it cannot be "
        "resumed; show, compare or report it instead"]
    assert sorted(p.relative_to(here) for p in here.rglob("*")) == before
    analysed = _cli("analyse", "--results-dir", str(_run_dir(here, "pf") / "imported-promptfoo" / "results"))
    assert analysed.exit_code == BAD_INPUT and "read-only, so it cannot be analysed again" in analysed.output
    assert sorted(p.relative_to(here) for p in here.rglob("*")) == before  # promptfoo's scores kept


def _damaged(here: Path) -> dict[str, Path]:
    files = {"bad.eval": b"PK\x03\x04 not really a zip", "bad.json": b'{"eval": {"task": "x"}, "samples": [',
             "other.json": b'{"hello": "world"}',
             "odd.json": b'{"eval": {"task": "triviaqa"}, "samples": [{"id": 1, "input": "q", "output": "text"}]}', "samples_nq_open_2026-01-01T00-00-00.jsonl": b'{"doc_id": 0}\n'}
    out = {}
    for name, data in files.items():
        out[name] = here / "in" / name
        out[name].parent.mkdir(exist_ok=True)
        out[name].write_bytes(data)
    no_header = here / "in" / "no_header.eval"
    with zipfile.ZipFile(no_header, "w") as z:
        z.writestr("samples/1_epoch_1.json", "{}")
    out["no_header.eval"] = no_header
    lines = LM_EVAL.read_text(encoding="utf-8").splitlines()
    twice = [json.loads(x) for x in lines] + [{**json.loads(x), "filter": "strict-match"} for x in lines]
    out["samples_nq_open_2026-01-02T00-00-00.jsonl"] = here / "in" / "samples_nq_open_2026-01-02T00-00-00.jsonl"
    out["samples_nq_open_2026-01-02T00-00-00.jsonl"].write_text("".join(json.dumps(x) + "\n" for x in twice),
                                                                encoding="utf-8")
    export = json.loads(PROMPTFOO.read_text(encoding="utf-8"))
    export["results"]["results"][0]["provider"]["id"] = "anthropic:claude"
    out["two_providers.json"] = here / "in" / "two_providers.json"
    out["two_providers.json"].write_text(json.dumps(export), encoding="utf-8")
    return out


def test_bad_input_is_one_line_exit_2_and_writes_nothing(here):
    assert _cli("import", str(EVAL), "--run-id", "taken").exit_code == OK
    files = _damaged(here)
    cases = [
        ((str(here / "missing.eval"),), "no file"),
        ((str(files["bad.eval"]),), "not a readable zip archive"),
        ((str(files["no_header.eval"]),), "no header.json"),
        ((str(files["bad.json"]),), "not valid JSON"),
        ((str(files["other.json"]),), "unknown log format"),
        ((str(files["samples_nq_open_2026-01-01T00-00-00.jsonl"]),), "no 'doc' field"),
        ((str(PROMPTFOO), "--run-id", "taken"), "run id 'taken' is taken"),
        ((str(PROMPTFOO), "--run-id", "../up"), "invalid run id"),
        ((str(files["two_providers.json"]),), "holds 2 provider x prompt pairs"),
        ((str(files["odd.json"]),), "a field has a shape"),
        ((str(PROMPTFOO), "--dataset", "my|faq"), "contains '|'"),
        ((str(files["samples_nq_open_2026-01-02T00-00-00.jsonl"]),), "holds the answers of 2 filters"),
    ]
    before = sorted(p.name for p in (here / "experiments").iterdir())
    for args, words in cases:
        out = _cli("import", *args)
        assert out.exit_code == BAD_INPUT, (args, out.output)
        lines = out.output.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in out.output, (args, out.output)
    assert sorted(p.name for p in (here / "experiments").iterdir()) == before  # no run, no temp folder


def test_a_log_without_gold_or_scores_is_refused(here):
    data = json.loads(PROMPTFOO.read_text(encoding="utf-8"))
    for result in data["results"]["results"]:
        for key in ("score", "success"):
            result.pop(key)
        result["gradingResult"] = None
    path = here / "ungraded.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    out = _cli("import", str(path))
    assert out.exit_code == BAD_INPUT and "neither gold answers nor a per-sample score" in out.output
    assert not (here / "experiments").exists() or not any((here / "experiments").iterdir())


def test_dataset_and_temperature_can_be_named(here):
    out = _cli("import", str(EVAL), "--run-id", "faq", "--dataset", "my_faq", "--temp", "0.7")
    assert out.exit_code == OK, out.output
    results = _run_dir(here, "faq") / "imported-inspect_ai" / "results"
    record = json.loads((results / "trial_manifest.json").read_text(encoding="utf-8"))["imported"]
    assert (record["dataset"], record["type"], record["scorer"]) == ("my_faq", "closed", "ours")
    assert (record["temperature"], record["temperature_source"]) == (0.7, "--temp")
    with open(results / "predictions.csv", encoding="utf-8", newline="") as fh:
        assert {(r["dataset"], r["temp"]) for r in csv.DictReader(fh)} == {("my_faq", "0.7")}
    unnamed = _cli("import", str(PROMPTFOO), "--run-id", "x")  # the task says "trivia": a guess it can make
    assert unnamed.exit_code == OK
    data = json.loads(PROMPTFOO.read_text(encoding="utf-8"))
    data["config"]["description"] = "my questions"
    (here / "pf.json").write_text(json.dumps(data), encoding="utf-8")
    refused = _cli("import", str(here / "pf.json"))
    assert refused.exit_code == BAD_INPUT and "pass --dataset" in refused.output
