"""The trial report: renders from contract-shaped artifacts, says the right thing on the first screen,
is self-contained and escaped, survives missing artifacts, and renders in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from config.schema import EvalConfig, StatsConfig
from scoring.pipeline import analyse_trial
from scoring.report import write_report
from scoring.stats import run_stats
from tests.support.paths import ROOT
from tests.support.scoring_inputs import make_inputs

FIXTURE = ROOT / "tests" / "fixtures" / "report" / "run_demo" / "demo-default" / "results"
PY = sys.executable


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """A copy of the demo trial's results/ folder (CONTRACT sections 4-9)."""
    dst = tmp_path / "run_demo" / "demo-default" / "results"
    shutil.copytree(FIXTURE, dst)
    return dst


def _set_effect(results: Path, delta: float, ci: list[float], q: float, temp: str = "0.0") -> None:
    """Rewrite the false-answer effect at one temperature (open-book) in significance.json."""
    path = results / "significance.json"
    sig = json.loads(path.read_text(encoding="utf-8"))
    block = sig["results"][temp]["open"]["metrics"]["false_answer_rate"]
    block.update({"delta_mean": delta, "ci_95": ci})
    block["wilcoxon"]["q_value"] = q
    path.write_text(json.dumps(sig), encoding="utf-8")


@pytest.mark.unit
def test_report_renders_from_fixture(results: Path) -> None:
    out = write_report(results, None)
    reports = results.parent / "reports"
    assert out["report_html"] == reports / "report.html" and out["report_md"] == reports / "report.md"
    names = {p.name for p in (reports / "figures").glob("*.png")}
    assert {"forest_t0.0.png", "forest_t0.7.png", "risk_coverage_t0.0_open.png", "telemetry.png"} <= names
    md = out["report_md"].read_text(encoding="utf-8")
    # first screen: the answer, before the settings
    assert md.index("treatment lowered the false-answer rate") < md.index("## Run settings")
    for text in ("| false answer | 39.0% | 19.0% | -20.0 *", "McNemar on EM", "pairing rate",
                 "finish_reason length): 80 of 799 (10.0%)", "Failed requests", "equivalent cloud cost",
                 "| 0.0 | control | 200 | 199 | 1 |", "requests per minute | 405.80", "a9a9a9a9",
                 "| treatment system prompt | config/prompts/treatment_system.txt", "212 (estimated)",
                 "Token counts: reported by the engine."):
        assert text in md, text
    assert "](figures/forest_t0.0.png)" in md


@pytest.mark.unit
@pytest.mark.parametrize(
    ("delta", "ci", "q", "expected"),
    [
        (-0.052, [-0.08, -0.02], 0.004, "treatment lowered the false-answer rate on open-book questions (SQuAD v2) "
                                        "by 5.2 points, from 39.0% to 19.0% (95% CI -8.0 to -2.0 points, q = 0.004, "
                                        "100 paired items) - an improvement."),
        (0.061, [0.02, 0.1], 0.012, "treatment raised the false-answer rate on open-book questions (SQuAD v2) by 6.1 "
                                    "points, from 39.0% to 19.0% (95% CI +2.0 to +10.0 points, q = 0.012, 100 paired "
                                    "items) - a worsening."),
        (-0.03, [-0.07, 0.01], 0.31, "treatment made no significant change to the false-answer rate on open-book "
                                     "questions (SQuAD v2): -3.0 points"),
    ],
)
def test_headline_wording_follows_direction_and_significance(results, delta, ci, q, expected) -> None:
    _set_effect(results, delta, ci, q)
    out = write_report(results, results.parent / "reports", figures=False)
    first = out["headline"][0]
    assert first.startswith("At temperature 0.0, ")
    assert expected in first
    html = out["report_html"].read_text(encoding="utf-8")
    assert html.index('class="headline"') < html.index("Run settings")


@pytest.mark.unit
def test_html_is_self_contained(results: Path) -> None:
    html = write_report(results, None)["report_html"].read_text(encoding="utf-8")
    refs = re.findall(r"""<[^>]*?\s(?:src|href)\s*=\s*["']?([^"' >]+)""", html, flags=re.IGNORECASE)
    # figures inline; the one kind of link goes to the sibling items.html (every paired item)
    assert refs and all(r.startswith("data:image/png;base64,") or re.fullmatch(r"items\.html(#[\w.=&;]*)?", r)
                        for r in refs), refs[:3]
    assert any(r.startswith("items.html") for r in refs)
    assert not re.search(r"https?://", html)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert "<details><summary>All other settings" in html  # secondary settings folded, no script needed


@pytest.mark.unit
def test_model_text_and_errors_are_escaped(results: Path) -> None:
    pred = results / "predictions.csv"
    text = pred.read_text(encoding="utf-8").replace("<b>Paris</b>", "<script>alert(1)</script>")
    pred.write_text(text, encoding="utf-8", newline="")
    out = write_report(results, None, figures=False)
    html = out["report_html"].read_text(encoding="utf-8")
    assert "<script" not in html
    assert "The answer is &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html  # model text
    assert "timeout after 3 retries &lt;script&gt;x&lt;/script&gt;" in html  # error log
    md = out["report_md"].read_text(encoding="utf-8")
    assert "<script" not in md and "The answer is &lt;script>alert(1)&lt;/script> & more" in md


@pytest.mark.unit
def test_secrets_in_manifest_never_shown(results: Path) -> None:
    path = results / "trial_manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["engine"]["api_key"] = "sk-do-not-show"
    manifest["FIREWORKS_API_KEY"] = "fw-do-not-show"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    out = write_report(results, None, figures=False)
    for p in (out["report_html"], out["report_md"]):
        assert "do-not-show" not in p.read_text(encoding="utf-8")


@pytest.mark.unit
def test_empty_results_folder_renders_not_available(tmp_path: Path) -> None:
    results = tmp_path / "t" / "results"
    results.mkdir(parents=True)
    out = write_report(results, None)
    md = out["report_md"].read_text(encoding="utf-8")
    assert "significance.json is missing" in md
    for text in ("trial_manifest.json: not available", "predictions.csv: not available", "costs.json: not available"):
        assert text in md, text
    assert out["figures"] == []


@pytest.mark.unit
def test_partial_and_corrupt_artifacts(results: Path) -> None:
    for name in ("per_item_scores.csv", "telemetry.csv", "local_costs.json", "errors.jsonl"):
        (results / name).unlink()
    (results / "costs.json").write_text("{not json", encoding="utf-8")
    out = write_report(results, None, figures=False)
    md = out["report_md"].read_text(encoding="utf-8")
    assert "Unreadable artifact: costs.json" in md
    assert "Pairing rate: not available" in md
    assert "no error log" in md
    # control/treatment means still come from significance.json when per_item_scores.csv is gone
    assert "treatment lowered the false-answer rate" in out["headline"][0]


@pytest.mark.unit
def test_report_from_real_stats(results: Path) -> None:
    """significance.json written by the project's statistics stage, then rendered."""

    (results / "significance.json").unlink()
    run_stats(results / "per_item_scores.csv", StatsConfig(bootstrap_samples=200, permutation_samples=200),
                    results / "significance.json")
    out = write_report(results, None)
    assert "lowered the false-answer rate" in out["headline"][0]
    assert any(p.name.startswith("risk_coverage_") for p in out["figures"])
    assert "TOST" in out["report_md"].read_text(encoding="utf-8")


def test_cli_on_cp1252_console(results: Path, tmp_path: Path) -> None:
    env = {"PYTHONIOENCODING": "cp1252", "PATH": "", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([PY, "-X", "warn_default_encoding", "-W", "error::EncodingWarning", "-m", "scoring.report",
                           "--results_dir", str(results), "--reports_dir", str(tmp_path / "r")],
                          capture_output=True, text=True, encoding="cp1252", env=env, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "report.html" in proc.stdout and (tmp_path / "r" / "report.html").is_file()
    bad = subprocess.run([PY, "-m", "scoring.report", "--results_dir", str(tmp_path / "nope")], capture_output=True,
                         text=True, encoding="utf-8", env=env, cwd=ROOT, check=False)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: results folder not found")
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                    reason="chromium not installed (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(results: Path, tmp_path: Path) -> None:
    html = write_report(results, None)["report_html"]
    shot = tmp_path / "shot.png"
    proc = subprocess.run([PY, str(ROOT / "tools" / "check_report_html.py"), str(html), str(shot)],
                          capture_output=True, text=True, encoding="utf-8", timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert _png_size(shot) == (1280, 2000)
    assert shot.stat().st_size > 50_000  # a blank page compresses to a few KB


@pytest.mark.unit
def test_report_after_real_pipeline_on_tiny_run(tmp_path: Path) -> None:
    """score -> stats -> costs -> report through scoring.pipeline on 4 items (n = 1 subgroups, null stats)."""

    prepared, results = make_inputs(tmp_path)
    cfg = EvalConfig.model_validate({"local_engine": "dry_run",
                                   "stats": {"bootstrap_samples": 200, "permutation_samples": 200}})
    analyse_trial(results, prepared, cfg, reports_dir=tmp_path / "reports")
    md = (tmp_path / "reports" / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# Excellence Experiment report")
    assert "false-answer rate on open-book questions" in md.split("## Run settings")[0]
    assert "| false answer | 50.0% | " in md  # T=0.0: s2 answered falsely by control only
    assert "equivalent cloud cost" in md and "rows without usage | 4" in md
    html = (tmp_path / "reports" / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html and "Traceback" not in html


@pytest.mark.unit
def test_headline_uses_p_when_fdr_is_off(results: Path) -> None:
    _set_effect(results, -0.2, [-0.29, -0.12], None)  # enable_fdr: false leaves q_value null
    first = write_report(results, None, figures=False)["headline"][0]
    assert "treatment lowered the false-answer rate" in first and ", p = 8.8e-05," in first and "q =" not in first
