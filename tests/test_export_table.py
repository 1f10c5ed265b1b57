"""``producer export`` (issue 29, item 3): one tidy row per temperature x type x dataset x metric, read from
significance.json by the report's own reader, as CSV, Markdown or LaTeX."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from config.schema import StatsConfig
from producer.cli import main as producer_main
from scoring.export_table import COLUMNS, render, tidy_rows
from scoring.stats import build_significance

pytestmark = pytest.mark.unit


def _sig() -> dict:
    rows = []
    for i in range(30):
        for cond, em in (("control", 0.0), ("treatment", 1.0 if i < 20 else 0.0)):
            rows.append({"item_key": f"triviaqa|q{i}", "type": "closed", "condition": cond, "temp": "0.0", "em": em,
                         "f1": em, "abstain_rate": 0.0, "false_answer_rate": np.nan, "unsupported_rate": np.nan})
    return build_significance(pd.DataFrame(rows), StatsConfig(bootstrap_samples=200, permutation_samples=200))


def test_the_table_has_every_effect_with_its_verdict(tmp_path):
    sig = _sig()
    rows = tidy_rows(sig)
    em = next(r for r in rows if r["metric"] == "em")
    block = sig["results"]["0.0"]["closed"]["metrics"]["em"]
    assert em["delta"] == pytest.approx(block["delta_mean"]) and em["n"] == 30 and em["verdict"] == "better"
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert list(parsed[0]) == list(COLUMNS) and float(parsed[0]["q"]) == pytest.approx(em["q"])
    md = render(rows, "markdown")
    assert md.splitlines()[0].startswith("| temp | type | dataset | metric |") and "| better |" in md
    tex = render(rows, "latex")
    assert tex.startswith("\\begin{tabular}") and "false\\_answer\\_rate" not in tex and "ci\\_low" in tex
    results = tmp_path / "results"
    results.mkdir()
    (results / "significance.json").write_text(json.dumps(sig), encoding="utf-8")
    out = CliRunner().invoke(producer_main, ["export", "--results-dir", str(results), "--format", "markdown"])
    assert out.exit_code == 0 and out.output == md
    missing = CliRunner().invoke(producer_main, ["export", "--results-dir", str(tmp_path)])
    assert missing.exit_code == 2 and "no significance.json" in missing.output
