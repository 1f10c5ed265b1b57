"""The report's data-quality section: can the comparison be trusted as collected?

Why: a treatment effect means little if half the treatment requests failed, answers were cut off by
the token limit, or token counts were guessed. This section shows pairing, completeness against the
trial manifest's expected counts, failures, `length` finishes (with examples of the model text) and
whether usage was estimated.
"""

from __future__ import annotations

from typing import Any

from scoring.report_data import ReportData
from scoring.report_text import NA, Block, Heading, Para, Table, fmt_num, fmt_pct


def _completeness(data: ReportData) -> Table | None:
    """Expected requests (trial manifest ``counts``) against result rows in predictions.csv."""
    counts = (data.manifest or {}).get("counts")
    if not isinstance(counts, dict) or not counts:
        return None
    got = (data.predictions or {}).get("by_temp_condition", {})
    rows = []
    for temp, per_cond in counts.items():
        if not isinstance(per_cond, dict):
            continue
        for cond, value in per_cond.items():
            expected = value.get("requests", value.get("expected")) if isinstance(value, dict) else value
            have = got.get(f"{temp} {cond}") if data.predictions is not None else None
            missing = expected - (have or 0) if isinstance(expected, int) and data.predictions is not None else None
            rows.append([str(temp), str(cond), fmt_num(expected), fmt_num(have if have is not None else
                                                                          (0 if data.predictions else None)),
                         fmt_num(missing)])
    if not rows:
        return None
    return Table(["temp", "condition", "expected requests", "results (predictions.csv)", "missing"], rows,
                 caption="Expected counts come from the trial manifest; a missing request is not scored.")


def _usage_flag(data: ReportData) -> Para | None:
    """Whether token counts came from the engine (manifest ``usage_estimated``, costs.json fallback)."""
    manifest = data.manifest or {}
    flag: Any = manifest.get("usage_estimated", manifest.get("tokens_estimated"))
    if flag is None and data.costs is not None:
        flag = data.costs.get("usage_estimated")
    missing = (data.costs or {}).get("rows_without_usage")
    if flag:
        return Para("Token counts are estimated (the engine reported no usage), so costs and tokens/s are "
                    "approximate.", "warning")
    if flag is None:
        if data.manifest is None and data.costs is None:
            return None
        return Para(f"Token counts: whether they were estimated is {NA}.", "note")
    text = "Token counts: reported by the engine."
    if isinstance(missing, int) and missing:
        text += f" {fmt_num(missing)} result rows have no usage."
    return Para(text)


def _stages(data: ReportData) -> Para | None:
    """The manifest's stage statuses. The report stage reads "running" while this very file is written (the
    pipeline marks it done afterwards; a failed write leaves no file), so a report shown says it is done."""
    stages = (data.manifest or {}).get("stage_status")
    if not isinstance(stages, dict) or not stages:
        return None
    parts = [f"{name}: {'done' if name == 'report' else entry.get('status', NA)}" for name, entry in stages.items()
             if isinstance(entry, dict)]
    return Para("Stages (trial manifest): " + ", ".join(parts) + ".", "note") if parts else None


def _both(block: Any, metric: str) -> list[float] | None:
    """The metric's control and treatment means of one (temp, type) block; None unless both are known."""
    if metric not in block.columns:
        return None
    values = block[metric].dropna()
    return [float(v) for v in values] if len(values) == 2 else None


def _lenient(block: Any) -> str | None:
    """'F1 is 31.0% and contains-answer is 80.0%' (the larger arm of each) when either is above 0, else None."""
    parts = []
    for metric, name in (("f1", "F1"), ("contains_answer", "contains-answer")):
        vals = _both(block, metric)
        if vals is not None and max(vals) > 0:
            parts.append(f"{name} is {fmt_pct(max(vals))}")
    return " and ".join(parts) or None


def floor_warnings(data: ReportData) -> list[Para]:
    """Floor and ceiling warnings (issue 29). EM at 0 % in both conditions while F1 or contains-answer is
    not: the answers hold the gold but in a sentence, so exact match cannot move whatever the prompt; say so
    instead of reporting "no change". EM or contains-answer at 100 % in both: it cannot show an improvement."""
    means = data.means
    if means is None or means.empty or "em" not in means.columns:
        return []
    out = []
    for (temp, type_), block in means.groupby(["temp", "type"], sort=True):
        where = f"At temperature {temp}, {type_}-book"
        em, lenient = _both(block, "em"), _lenient(block)
        if em is not None and max(em) == 0 and lenient:
            out.append(Para(f"{where}: EM is 0% in both conditions while {lenient}: answers are right but wordy "
                            "(a sentence around the gold answer): see contains-answer. Exact match cannot show an "
                            "effect here; ask for short answers in the prompts.", "warning"))
        for metric, name in (("em", "EM"), ("contains_answer", "contains-answer")):
            vals = _both(block, metric)
            if vals is not None and min(vals) == 1:
                out.append(Para(f"{where}: {name} is 100% in both conditions (a ceiling): it cannot show an "
                                "improvement, only a worsening.", "warning"))
    return out


def quality_section(data: ReportData) -> list[Block]:
    out: list[Block] = [Heading("Data quality"), *floor_warnings(data)]
    if data.pairing:
        out.append(Table(["temp", "type", "control items", "treatment items", "paired", "pairing rate"],
                         [[p["temp"], p["type"], fmt_num(p["control_items"]), fmt_num(p["treatment_items"]),
                           fmt_num(p["paired"]), fmt_pct(p["rate"])] for p in data.pairing],
                         caption="Only items with a result in both conditions enter the paired statistics."))
    else:
        out.append(Para(f"Pairing rate: {NA} (per_item_scores.csv missing).", "note"))
    table = _completeness(data)
    if table is not None:
        out.append(table)
    if data.errors is not None:
        kind = "warning" if data.errors["failed"] else "normal"
        out.append(Para(f"Failed requests (no result after retries, from {data.errors['path']}): "
                        f"{fmt_num(data.errors['failed'])}. A failed request is missing, not wrong.", kind))
        if data.errors["examples"]:
            out.append(Table(["custom_id", "last error"], [[e["custom_id"], e["error"]] for e in data.errors["examples"]],
                             code_columns={0, 1}))
    else:
        out.append(Para("Failed requests: no error log in the results folder (none recorded).", "note"))
    pred = data.predictions
    if pred is None:
        out.append(Para(f"predictions.csv: {NA}.", "note"))
    else:
        share = pred["length"] / pred["rows"] if pred["rows"] else None
        reasons = ", ".join(f"{k}: {fmt_num(v)}" for k, v in sorted(pred["finish_reasons"].items()))
        kind = "warning" if pred["length"] else "normal"
        out.append(Para(f"Responses cut off by the token limit (finish_reason length): {fmt_num(pred['length'])} of "
                        f"{fmt_num(pred['rows'])} ({fmt_pct(share)}); they are scored as written. "
                        f"All finish reasons: {reasons or NA}.", kind))
        if pred["length_examples"]:
            out.append(Table(["custom_id", "response (first 300 characters)"],
                             [[e["custom_id"], e["text"]] for e in pred["length_examples"]],
                             caption="Examples of cut-off responses (model text).", code_columns={0, 1}))
    for para in (_usage_flag(data), _stages(data)):
        if para is not None:
            out.append(para)
    for problem in data.problems:
        out.append(Para(f"Unreadable artifact: {problem}.", "warning"))
    return out
