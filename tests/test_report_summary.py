"""The multi-trial summary: per-trial effects side by side (never pooled) and BH FDR across trials."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from scoring.summary import build_summary, write_run_summary
from tests.support.paths import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "report" / "run_demo" / "demo-default"


def _family(sig: dict) -> list[float]:
    """The BH family of one file, walked independently of scoring.report_sig."""
    out = []
    for per_type in sig["results"].values():
        for block in per_type.values():
            subs = list(block.get("subgroups", {}).get("dataset", {}).values())
            for b in [block] + (subs if len(subs) > 1 else []):
                out.append(b["mcnemar"]["p_exact"])
                out += [m["wilcoxon"]["p_value"] for m in b["metrics"].values()]
    return out


def _make_run(tmp_path: Path) -> Path:
    run = tmp_path / "run_sweep"
    for slug in ("smollm2-default", "smollm2-strict"):
        shutil.copytree(FIXTURE, run / slug)
    path = run / "smollm2-strict" / "results" / "significance.json"
    sig = json.loads(path.read_text(encoding="utf-8"))
    fa = sig["results"]["0.0"]["open"]["metrics"]["false_answer_rate"]
    fa.update({"delta_mean": 0.05, "ci_95": [-0.02, 0.12]})
    fa["wilcoxon"]["p_value"] = 0.9
    path.write_text(json.dumps(sig), encoding="utf-8")
    return run


def test_summary_compares_trials_with_fdr_across_them(tmp_path: Path) -> None:
    run = _make_run(tmp_path)
    env = {"PYTHONIOENCODING": "cp1252", "PATH": "", "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-X", "warn_default_encoding", "-W", "error::EncodingWarning",
                         "-m", "scoring.summary", "--run_dir", str(run)], capture_output=True,
                        text=True, encoding="cp1252", env=env, cwd=ROOT, check=False)
    assert ok.returncode == 0, ok.stderr
    html_path = run / "summary.html"
    assert f"wrote {html_path}" in ok.stdout
    md = (run / "summary.md").read_text(encoding="utf-8")
    assert md.index("treatment lowered it significantly in 3 and raised it in 0 of 4") < md.index("## Trials")
    # each trial keeps its own control and treatment means (no pooling)
    assert "| smollm2-default | 0.0 | 39.0% | 19.0% | -20.0 *" in md
    assert "| smollm2-strict | 0.0 | 39.0% | 19.0% | +5.0 |" in md
    # q (run) = BH over the union of both trials' families, as statsmodels computes it
    sigs = [json.loads((run / s / "results" / "significance.json").read_text(encoding="utf-8"))
            for s in ("smollm2-default", "smollm2-strict")]
    pooled = _family(sigs[0]) + _family(sigs[1])
    q = multipletests(np.array(pooled), method="fdr_bh")[1]
    fa_default = sigs[0]["results"]["0.0"]["open"]["metrics"]["false_answer_rate"]["wilcoxon"]["p_value"]
    expected = q[pooled.index(fa_default)]
    row = next(line for line in md.splitlines() if line.startswith("| smollm2-default | 0.0 | 39.0% | 19.0% | -20.0"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[8]) == float(f"{expected:.1e}") or cells[8] == f"{expected:.3f}"
    html = html_path.read_text(encoding="utf-8")
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]+)""", html)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert (run / "summary_figures" / "summary_open_false_answer_rate.png").is_file()


@pytest.mark.unit
def test_summary_of_run_without_statistics(tmp_path: Path) -> None:
    (tmp_path / "run_x" / "t1" / "results").mkdir(parents=True)
    doc = build_summary(tmp_path / "run_x", tmp_path / "figs")
    assert "nothing to compare" in doc[1].text
    html = write_run_summary(tmp_path / "run_x").read_text(encoding="utf-8")
    assert "nothing to compare" in html


def test_summary_cli_missing_run_is_one_line(tmp_path: Path) -> None:
    env = {"PYTHONIOENCODING": "cp1252", "PATH": "", "PYTHONPATH": str(ROOT)}
    bad = subprocess.run([sys.executable, "-m", "scoring.summary", "--run_dir", str(tmp_path / "missing")],
                         capture_output=True, text=True, encoding="utf-8", env=env, cwd=ROOT, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "run folder not found" in bad.stderr
