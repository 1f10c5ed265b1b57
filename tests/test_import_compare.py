"""``producer compare`` between a run of ours and each imported foreign log on the same items (issue 26):
one dry run of ours on the whole bundled sample (module-scoped, one subprocess, a few seconds), then each
fixture imported and compared in-process.
"""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from producer.cli import main
from producer.host.exit_codes import OK
from tests.support.cli import run_cli
from tests.support.offline_config import write_offline_config
from tests.support.paths import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "imports"  # the files of tests/fixtures/imports/README.md
EVAL, INSPECT_JSON, PROMPTFOO = (FIXTURES / n for n in ("inspect_triviaqa.eval", "inspect_squad_v2.json",
                                                       "promptfoo_triviaqa.json"))
LM_EVAL = FIXTURES / "samples_nq_open_2026-12-05T08-00-00.000000.jsonl"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """Our dry run of every bundled sample item (the fixtures' items are among them)."""
    tmp = tmp_path_factory.mktemp("ours")
    cfg = write_offline_config(tmp, sizes={"squad_v2": None, "triviaqa": None, "nq_open": None})
    out = run_cli(["run", "--config", str(cfg), "-w", "1", "--run-id", "ours"], cwd=tmp, queue=tmp / "queue")
    assert out.returncode == OK, out.stdout + out.stderr
    return tmp


@pytest.mark.parametrize(("fixture", "run_id", "type_", "paired", "foreign"), [
    (EVAL, "inspect-eval", "closed", 4, False),
    (INSPECT_JSON, "inspect-json", "open", 4, False),
    (LM_EVAL, "lm-eval", "closed", 3, False),
    (PROMPTFOO, "promptfoo", "closed", 3, True),
])
def test_an_imported_log_compares_with_our_run_on_the_same_items(ours, monkeypatch, fixture, run_id, type_, paired,
                                                                 foreign):
    monkeypatch.chdir(ours)
    monkeypatch.setenv("EXCELLENCE_QUEUE_DIR", str(ours / "queue"))
    runner = CliRunner()
    assert runner.invoke(main, ["import", str(fixture), "--run-id", run_id]).exit_code == OK
    refused = runner.invoke(main, ["compare", "ours:treatment", run_id])
    assert refused.exit_code == 2 and "asked different questions" in refused.output  # the tool's own prompts
    out = runner.invoke(main, ["compare", "ours:treatment", run_id, "--allow-different-inputs"])
    assert out.exit_code == OK, out.output
    assert f"{paired} paired answers" in out.output and ("scored by" in out.output) == foreign
    pair = ours / "experiments" / f"compare_ours-treatment__{run_id}" / "treatment_vs_control"
    summary = json.loads((pair / "results" / "comparison.json").read_text(encoding="utf-8"))
    assert summary["paired"] == paired and not summary["only_b"]
    assert ("scoring/rules.py" in summary["scorers"]["treatment"]) != foreign  # B (the import) is "treatment"
    sig = json.loads((pair / "results" / "significance.json").read_text(encoding="utf-8"))
    block = sig["results"]["0.0"][type_]
    assert block["metrics"]["em"]["n_items"] == paired and "mcnemar" in block
    report = (pair / "reports" / "report.html").read_text(encoding="utf-8")
    assert ("the comparison assumes both sides" in report) == foreign
    if foreign:  # the import's em is promptfoo's pass/fail, not our rules on our gold
        with open(pair / "results" / "per_item_scores.csv", encoding="utf-8", newline="") as fh:
            theirs = {r["item_key"]: float(r["em"]) for r in csv.DictReader(fh) if r["condition"] == "treatment"}
        assert theirs == {"triviaqa|sample_tqa_001": 1.0, "triviaqa|sample_tqa_002": 1.0, "triviaqa|sample_tqa_003": 0.0}
