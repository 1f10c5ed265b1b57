"""One tidy table of a trial's (or a comparison's) effects for a paper: ``producer export`` (issue 29).

Why: copying numbers from report.html into a manuscript invites typos. One row per temperature x type x
dataset x metric with control, treatment, delta, its 95% interval, p, q, n and the verdict, read from
significance.json by the report's own reader (scoring/report_sig.py), written as CSV, LaTeX or Markdown.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from scoring.report_sig import EffectRow, effect_rows

COLUMNS = ("temp", "type", "dataset", "metric", "n", "control", "treatment", "delta", "ci_low", "ci_high", "p", "q",
           "verdict")


def tidy_rows(sig: dict[str, Any]) -> list[dict[str, Any]]:
    """The effects of significance.json as rows (all datasets first, then each dataset of a type)."""
    def row(r: EffectRow) -> dict[str, Any]:
        return {"temp": r.temp, "type": r.type, "dataset": r.dataset or "all", "metric": r.metric, "n": r.n_items,
                "control": r.control_mean, "treatment": r.treatment_mean, "delta": r.delta, "ci_low": r.ci_low,
                "ci_high": r.ci_high, "p": r.p_value, "q": r.q_value, "verdict": r.verdict or ""}

    return [row(r) for r in effect_rows(sig)]


def _fmt(value: Any, key: str) -> str:
    if value is None:
        return ""
    if key in ("p", "q"):
        return f"{value:.3g}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    """``csv`` (full precision), ``markdown`` or ``latex`` (a booktabs tabular)."""
    if fmt == "csv":
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    cells = [[_fmt(r[k], k) for k in COLUMNS] for r in rows]
    if fmt == "markdown":
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells]) + "\n"
    if fmt == "latex":
        def tex(text: str) -> str:
            for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
                text = text.replace(a, b)
            return text

        head = " & ".join(tex(c) for c in COLUMNS) + r" \\"
        body = [" & ".join(tex(x) for x in c) + r" \\" for c in cells]
        return "\n".join([r"\begin{tabular}{" + "l" * 4 + "r" * 8 + "l}", r"\toprule", head, r"\midrule", *body,
                          r"\bottomrule", r"\end{tabular}"]) + "\n"
    raise ValueError(f"unknown format {fmt!r}")
