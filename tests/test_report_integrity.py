"""The report never lies about what happened: a dry run says so on top (issue 12.1), a missing
first-choice result says why (12.4), and model text cannot become a link or a remote image in
report.md (12.12)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from config.schema import StatsConfig
from scoring.report import write_report
from scoring.stats import run_stats
from scoring.summary import write_run_summary
from tests.support.paths import ROOT

pytestmark = pytest.mark.unit

FIXTURE = ROOT / "tests" / "fixtures" / "report" / "run_demo" / "demo-default"
BANNER = "DRY RUN: synthetic answers"


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    dst = tmp_path / "run_demo" / "demo-default"
    shutil.copytree(FIXTURE, dst)
    return dst / "results"


def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _banner_on_top(out: dict) -> None:
    md = out["report_md"].read_text(encoding="utf-8")
    html = out["report_html"].read_text(encoding="utf-8")
    assert f"> **{BANNER}." in md and md.index(BANNER) < md.index("## Run settings")
    assert md.index(BANNER) < md.index(out["headline"][0][:40])
    assert f'<p class="banner">{BANNER}.' in html and html.index(BANNER) < html.index('class="headline"')


def test_dry_run_manifest_flag_puts_a_banner_on_report(results: Path) -> None:
    _edit_json(results / "trial_manifest.json", lambda m: m.update(dry_run=True))
    _banner_on_top(write_report(results, None, figures=False))


def test_dry_run_from_local_costs_when_manifest_does_not_say(results: Path) -> None:
    """Today's runs: only local_costs.json (engine.name, from the result rows) knows it was a dry run."""
    _edit_json(results / "local_costs.json", lambda c: c["engine"].update(name="dry_run"))
    _banner_on_top(write_report(results, None, figures=False))


def test_real_run_has_no_banner(results: Path) -> None:
    _edit_json(results / "trial_manifest.json", lambda m: m.update(dry_run=False))
    out = write_report(results, None, figures=False)
    for path in (out["report_md"], out["report_html"]):
        assert BANNER not in path.read_text(encoding="utf-8")


def test_summary_of_a_dry_run_has_the_banner(tmp_path: Path) -> None:
    run = tmp_path / "run_sweep"
    for slug in ("m-default", "m-strict"):
        shutil.copytree(FIXTURE, run / slug)
    _edit_json(run / "m-strict" / "results" / "trial_manifest.json", lambda m: m.update(dry_run=True))
    html = write_run_summary(run).read_text(encoding="utf-8")
    md = (run / "summary.md").read_text(encoding="utf-8")
    assert f"> **{BANNER}. The answers of trials m-strict came" in md
    assert md.index(BANNER) < md.index("## Trials") and f'<p class="banner">{BANNER}.' in html
    _edit_json(run / "m-default" / "results" / "trial_manifest.json", lambda m: m.update(dry_run=True))
    write_run_summary(run)
    assert "every trial of this run" in (run / "summary.md").read_text(encoding="utf-8")


def _fail_block(results: Path, temp: str, type_: str, condition: str) -> None:
    """As if every `condition` request of (temp, type) failed: drop its per-item rows, re-run the stats."""
    path = results / "per_item_scores.csv"
    df = pd.read_csv(path, dtype={"temp": str}, keep_default_na=False, encoding="utf-8")
    gone = (df["temp"] == temp) & (df["type"] == type_) & (df["condition"] == condition)
    df[~gone].to_csv(path, index=False, encoding="utf-8")
    run_stats(path, StatsConfig(bootstrap_samples=200, permutation_samples=200), results / "significance.json")


def test_headline_says_why_the_first_choice_result_is_missing(results: Path) -> None:
    _fail_block(results, "0.0", "open", "control")
    out = write_report(results, None, figures=False)
    first = out["headline"][0]
    assert first.startswith("At temperature 0.0, there is no result for the false-answer rate on open-book "
                            "questions (SQuAD v2): every control request failed or is missing"), first
    assert ("(control: 0 items with a result, 100 requests planned; treatment: 100 items with a result, "
            "100 requests planned)") in first
    assert out["headline"][1].startswith("At temperature 0.0, treatment")  # then closed-book EM, as before
    assert "exact-match rate" in out["headline"][1]
    md = out["report_md"].read_text(encoding="utf-8")
    assert md.index("there is no result for the false-answer rate") < md.index("## Run settings")
    (results / "per_item_scores.csv").unlink()  # significance.json's no_paired_items still says why
    assert write_report(results, None, figures=False)["headline"][0] == first
    _edit_json(results / "significance.json", lambda sig: sig.pop("no_paired_items"))  # an older file
    first = write_report(results, None, figures=False)["headline"][0]
    assert first.startswith("At temperature 0.0, there is no result for the false-answer rate") and \
        "per_item_scores.csv is not available" in first


def test_headline_names_a_temperature_where_nothing_was_scored(results: Path) -> None:
    _fail_block(results, "0.7", "open", "control")
    _fail_block(results, "0.7", "open", "treatment")
    headline = write_report(results, None, figures=False)["headline"]
    missing = [s for s in headline if s.startswith("At temperature 0.7, there is no result")]
    assert len(missing) == 1 and "no request of either condition has a scored result" in missing[0]
    assert "(control: 0 items with a result, 100 requests planned; treatment: 0 items" in missing[0]


def test_no_missing_sentence_for_a_type_the_trial_never_had(results: Path) -> None:
    for temp in ("0.0", "0.7"):
        for cond in ("control", "treatment"):
            _fail_block(results, temp, "open", cond)

    def closed_only(m: dict) -> None:
        for per_cond in m["counts"].values():
            for counts in per_cond.values():
                counts["open"] = 0
    _edit_json(results / "trial_manifest.json", closed_only)
    headline = write_report(results, None, figures=False)["headline"]
    assert headline and all("open-book" not in s for s in headline), headline


MALICIOUS = "[click](javascript:alert(1)) ![x](http://attacker.example/pixel.png) a|b \\[y](http://e.example/)"


def test_markdown_links_and_images_from_data_are_escaped(results: Path) -> None:
    pred = results / "predictions.csv"
    df = pd.read_csv(pred, dtype=str, keep_default_na=False, encoding="utf-8")
    df.loc[df["finish_reason"] == "length", "response_text"] = MALICIOUS  # shown as cut-off examples
    df.to_csv(pred, index=False, encoding="utf-8")
    errors = results / "errors.jsonl"
    errors.write_text(json.dumps({"custom_id": "squad_v2|sq011|control|0.0|0|open", "error": MALICIOUS}) + "\n",
                      encoding="utf-8")
    _edit_json(results / "trial_manifest.json", lambda m: m["trial"].update(model="[m](javascript:x)"))
    md_text = write_report(results, None, figures=False)["report_md"].read_text(encoding="utf-8")
    renderer = MarkdownIt("commonmark").enable("table")
    renderer.validateLink = lambda url: True  # the escaping alone must keep links out, whatever a viewer allows
    html = renderer.render(md_text)
    assert "<a " not in html and "<img" not in html, [line for line in html.splitlines() if "<a " in line
                                                        or "<img" in line][:3]
    # the text itself is still there, readable, and each table cell stayed one cell
    shown = "[click](javascript:alert(1)) ![x](http://attacker.example/pixel.png) a|b \\[y](http://e.example/)"
    cells = [line for line in html.splitlines() if "javascript:alert(1)" in line]
    assert cells and all(line.startswith("<td>") for line in cells)
    assert any(shown in line for line in cells), cells[:2]
    assert "<td>[m](javascript:x)</td>" in html
