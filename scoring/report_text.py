"""Words and numbers of the report: number formats, the first-screen sentence, and the document blocks.

Why: the report exists to answer one question in one sentence ("did treatment change the
false-answer rate, by how much, how sure are we"); that sentence is generated here from the data, with
wording that matches the direction and significance of the effect. Renderers (markdown, HTML) only lay
out the blocks defined here; they never compute.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from config.contract import CONDITIONS, DATASET_TYPE
from config.wording import count, plural
from scoring.report_clustered import prefer_clustered
from scoring.report_sig import (
    EffectRow,
    blocks,
    effect_from_metric,
    find_effect,
    meta_subgroup_rows,
    metric_names,
    subgroup_blocks,
    temps,
)
from scoring.verdicts import METRIC_GOOD

NA = "not available"
METRIC_LABELS = {"em": "EM", "f1": "F1", "abstain_rate": "abstain", "false_answer_rate": "false answer",
                 "unsupported_rate": "unsupported", "contains_answer": "contains answer"}
METRIC_PHRASES = {"em": "exact-match rate", "f1": "F1 score", "abstain_rate": "abstention rate",
                  "false_answer_rate": "false-answer rate", "unsupported_rate": "unsupported-answer rate",
                  "contains_answer": "contains-answer rate"}
TYPE_WORDS = {"open": "open-book questions", "closed": "closed-book questions"}
DISPLAY_NAMES = {"squad_v2": "SQuAD v2", "triviaqa": "TriviaQA", "nq_open": "NQ-Open"}  # others: as configured


def type_phrase(type_: str, datasets: Iterable[str] = ()) -> str:
    """"open-book questions (SQuAD v2, my_faq)": the datasets a result covers (a user's own ones included);
    without any known (no subgroups recorded), the built-in datasets of that type."""
    given = list(dict.fromkeys(datasets)) or [d for d, t in DATASET_TYPE.items() if t == type_]
    names = [d for d in DATASET_TYPE if d in given] + [d for d in given if d not in DATASET_TYPE]
    words = TYPE_WORDS.get(type_, f"{type_} questions")
    return f"{words} ({', '.join(DISPLAY_NAMES.get(d, d) for d in names)})" if names else words


def sig_datasets(sig: dict[str, Any] | None) -> dict[str, list[str]]:
    """{type: dataset names} over every block's dataset subgroups of significance.json."""
    out: dict[str, list[str]] = {}
    for _temp, type_, block in blocks(sig or {}):
        out.setdefault(type_, []).extend(n for n in subgroup_blocks(block) if n not in out.get(type_, []))
    return out



@dataclass
class Heading:
    text: str
    level: int = 2
    html_only: bool = False  # left out of report.md (the long lists live in report.html and items.html)


@dataclass
class Para:
    text: str
    kind: str = "normal"  # normal | banner | headline | subhead | note | warning
    html_only: bool = False


DRY_RUN_BANNER = "DRY RUN: synthetic answers"


def dry_run_banner(detail: str) -> Para:
    """The first thing a dry run's report or summary says: its answers came from no model."""
    return Para(f"{DRY_RUN_BANNER}. {detail}", "banner")


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    code_columns: set[int] = field(default_factory=set)  # columns holding model text or ids
    collapsed: bool = False  # HTML: folded under its caption (<details>), markdown: shown as usual
    html_only: bool = False
    nowrap_columns: set[int] = field(default_factory=set)  # short ids (dataset, item) kept on one line in HTML


@dataclass
class Link:
    """A relative link to a sibling file of the report (items.html), never to the network."""

    text: str
    href: str
    html_only: bool = False


@dataclass
class Figure:
    path: Path
    caption: str
    half: bool = False  # small figures sit two to a row in HTML


Block = Heading | Para | Table | Figure | Link


def fmt_pct(x: float | None) -> str:
    return NA if x is None else f"{100 * x:.1f}%"


def fmt_pts(x: float | None, signed: bool = True) -> str:
    if x is None:
        return NA
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return NA
    if p == 0:
        return "0"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def fmt_num(x: Any, digits: int = 2) -> str:
    if x is None:
        return NA
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x != 0 and (abs(x) >= 1e6 or abs(x) < 10 ** -digits):
            return f"{x:.3g}"
        return f"{x:,.{digits}f}"
    return str(x)


def fmt_ci(row: EffectRow) -> str:
    if row.ci_low is None or row.ci_high is None:
        return NA
    return f"{fmt_pts(row.ci_low)} to {fmt_pts(row.ci_high)}"


def row_means(row: EffectRow, means: pd.DataFrame | None) -> tuple[float | None, float | None]:
    """Control and treatment means of one effect: from significance.json when recorded, else per_item_scores."""
    if row.control_mean is not None and row.treatment_mean is not None:
        return row.control_mean, row.treatment_mean
    if row.dataset is not None:
        return None, None
    return condition_means(means, row.temp, row.type, row.metric)


def condition_means(means: pd.DataFrame | None, temp: str, type_: str, metric: str) -> tuple[float | None, float | None]:
    """Control and treatment means over paired items (from per_item_scores.csv)."""
    if means is None or means.empty or metric not in means.columns:
        return None, None
    sel = means[(means["temp"] == temp) & (means["type"] == type_)]
    out = []
    for cond in CONDITIONS:
        vals = sel.loc[sel["condition"] == cond, metric]
        value = vals.iloc[0] if len(vals) else None
        out.append(None if value is None or pd.isna(value) else float(value))
    return out[0], out[1]


Unanswered = dict[str, tuple[int, float, float]]  # temp -> (unanswerable items, answered: control, treatment)


def unanswerable_answered(pairs: Iterable[Any] | None) -> Unanswered:
    """Per temperature, the paired unanswerable open-book items and how many each condition answered
    (the sum of 1 - abstain rate: a count of items with K = 1, items' shares with K > 1)."""
    out: dict[str, list[float]] = {}
    for p in pairs or ():
        if p.type == "open" and p.unanswerable:
            acc = out.setdefault(p.temp, [0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += 1 - p.control_abstain
            acc[2] += 1 - p.treatment_abstain
    return {t: (int(n), round(c, 6), round(tr, 6)) for t, (n, c, tr) in out.items()}


def _unanswerable_clause(counts: tuple[int, float, float] | None) -> str:
    """" of open-book items; 7 of 7 unanswerable questions answered in control, 7 of 7 in treatment":
    the contract's rate is over every open-book item, so a reader also needs the rate over the questions
    that can carry a false answer (issue 29)."""
    if not counts or not counts[0]:
        return ""
    n, control, treatment = counts
    return (f" of open-book items; {count(control)} of {plural(n, 'unanswerable question')} answered in control, "
            f"{count(treatment)} of {n:,} in treatment")


def effect_sentence(row: EffectRow, means: pd.DataFrame | None, prefix_temp: bool = True,
                    datasets: Iterable[str] = (), unanswerable: tuple[int, float, float] | None = None) -> str:
    """One plain-English sentence: direction, size in points, interval, q (or p), paired items; for the
    false-answer rate also the answered unanswerable questions (``unanswerable``, see unanswerable_answered)."""
    phrase = METRIC_PHRASES.get(row.metric, row.metric)
    where = type_phrase(row.type, datasets)
    lead = f"At temperature {row.temp}, treatment" if prefix_temp else "Treatment"
    if row.delta is None:
        return f"{lead} has no estimate for the {phrase} on {where}: no paired items."
    control, treatment = row_means(row, means)
    moved = f", from {fmt_pct(control)} to {fmt_pct(treatment)}" if control is not None and treatment is not None else ""
    if moved and row.metric == "false_answer_rate":
        moved += _unanswerable_clause(unanswerable)
    pname = "q" if row.q_value is not None else "p"
    stats = f"95% CI {fmt_ci(row)} points, {pname} = {fmt_p(row.decisive_p)}"
    if row.clustered:
        stats = f"95% CI {fmt_ci(row)} points, {pname} = {fmt_p(row.decisive_p)}, clustered by {row.clustered}"
    elif row.clustered_note:
        stats += f"; {row.clustered_note}"
    if row.n_items is not None:
        stats += f", {plural(row.n_items, 'paired item')}"
    size = f"{abs(100 * row.delta):.1f} points"
    if row.significant and row.delta != 0:
        verb = "lowered" if row.delta < 0 else "raised"
        good = METRIC_GOOD.get(row.metric, 0) * (1 if row.delta > 0 else -1)
        judgement = " - an improvement" if good > 0 else (" - a worsening" if good < 0 else "")
        caution = ""
        if row.ci_low is not None and row.ci_high is not None and row.ci_low <= 0 <= row.ci_high:
            caution = " The bootstrap interval includes zero, so treat this with care."
        return f"{lead} {verb} the {phrase} on {where} by {size}{moved} ({stats}){judgement}.{caution}{_verdict(row)}"
    return (f"{lead} made no significant change to the {phrase} on {where}: "
            f"{fmt_pts(row.delta)} points{moved} ({stats}).{_verdict(row)}")


def _verdict(row: EffectRow) -> str:
    """" Verdict: equivalent (not significant, and TOST ...)." (scoring/verdicts.py); "" for older files."""
    return f" Verdict: {row.verdict} ({row.verdict_reason})." if row.verdict else ""


def _expected_requests(manifest: dict[str, Any] | None, temp: str, type_: str) -> dict[str, int] | None:
    """{condition: requests of ``type_`` at ``temp``} from the trial manifest's ``counts``, None if unknown."""
    counts = (manifest or {}).get("counts")
    per_cond = counts.get(temp) if isinstance(counts, dict) else None
    if not isinstance(per_cond, dict):
        return None
    out = {c: v.get(type_) for c, v in per_cond.items() if isinstance(v, dict) and isinstance(v.get(type_), int)}
    return out or None


def missing_sentence(temp: str, type_: str, metric: str, sig: dict[str, Any],
                     pairing: list[dict[str, Any]], manifest: dict[str, Any] | None) -> str | None:
    """Why a first-screen result is missing (no paired item), or None when the trial never had that type.

    Why: when every control request of a block failed, the block has no statistics; without this sentence
    the first screen would silently lead with another block's result."""
    expected = _expected_requests(manifest, temp, type_)
    have: dict[str, int] | None = None
    entry = next((p for p in pairing if p.get("temp") == temp and p.get("type") == type_), None)
    if entry is not None:
        have = {"control": int(entry.get("control_items") or 0), "treatment": int(entry.get("treatment_items") or 0)}
    else:
        no_pairs = sig.get("no_paired_items") if isinstance(sig.get("no_paired_items"), dict) else {}
        unpaired = ((no_pairs.get(temp) or {}).get(type_) or {}).get("unpaired")
        if isinstance(unpaired, dict):
            have = {"control": len(unpaired.get("control_only") or []),
                    "treatment": len(unpaired.get("treatment_only") or [])}
    phrase = METRIC_PHRASES.get(metric, metric)
    where = type_phrase(type_, sig_datasets(sig).get(type_, ()))
    if have is None:
        if not (expected and any(expected.values())):
            return None  # this trial has no such questions at this temperature
        if pairing:  # per-item scores were read: none of this type at this temperature
            have = {"control": 0, "treatment": 0}
        else:
            return (f"At temperature {temp}, there is no result for the {phrase} on {where}: significance.json "
                    "has no paired items for it and per_item_scores.csv is not available to say why.")

    def side(cond: str) -> str:
        want = (expected or {}).get(cond)
        return f"{cond}: {plural(have[cond], 'item')} with a result" + (f", {want:,} requests planned" if want is not None else "")

    empty = [c for c in CONDITIONS if have[c] == 0]
    if len(empty) == 2:
        why = "no request of either condition has a scored result"
    elif empty:
        why = f"every {empty[0]} request failed or is missing"
    else:
        why = "no item has a result in both conditions"
    return (f"At temperature {temp}, there is no result for the {phrase} on {where}: {why} "
            f"({side('control')}; {side('treatment')}), so no item is paired. "
            "See Data quality for the failed requests.")


def headline(rows: list[EffectRow], sig: dict[str, Any] | None, means: pd.DataFrame | None,
             pairing: list[dict[str, Any]] | None = None, manifest: dict[str, Any] | None = None,
             unanswerable: Unanswered | None = None) -> list[str]:
    """The first-screen sentences: false answers on open-book questions, then EM on closed-book ones, at
    each temperature; a result that is missing says why instead of silently giving way to the next."""
    if not sig:
        return ["No statistics are available for this trial yet (significance.json is missing), "
                "so there is no answer to report."]
    out = []
    temp_labels = temps(sig)
    planned = (manifest or {}).get("temps")
    if isinstance(planned, list):  # a temperature where nothing at all was scored is missing from sig
        temp_labels += [str(t) for t in planned if str(t) not in temp_labels]
    for temp in temp_labels:
        for type_, metric in (("open", "false_answer_rate"), ("closed", "em")):
            row = find_effect(rows, temp, type_, metric)
            if row is not None:
                row = prefer_clustered(row, sig)  # items sharing paragraphs: the clustered interval and p
                out.append(effect_sentence(row, means, prefix_temp=True, datasets=sig_datasets(sig).get(type_, ()),
                                           unanswerable=(unanswerable or {}).get(temp) if row.dataset is None else None))
                continue
            reason = missing_sentence(temp, type_, metric, sig, pairing or [], manifest)
            if reason is not None:
                out.append(reason)
        also = also_significant(rows, temp, sig)
        if also:
            out.append(also)
    return out or ["significance.json holds no comparable results (no paired items)."]


HEADLINE_METRICS = {("open", "false_answer_rate"), ("closed", "em")}


def also_significant(rows: list[EffectRow], temp: str, sig: dict[str, Any]) -> str | None:
    """"Also significant at temperature T (q < 0.05): ..." for every other significant metric of a whole
    type at ``temp``, or None. Why: a run whose only effect is on a secondary metric (the demo's abstention)
    must not read as "no significant change" on the first screen and the console."""
    found = [r for r in rows if r.temp == temp and r.dataset is None and r.significant and r.delta
             and (r.type, r.metric) not in HEADLINE_METRICS]
    if not found:
        return None
    datasets = sig_datasets(sig)
    parts = []
    for r in found:
        where = type_phrase(r.type, datasets.get(r.type, ()))
        moved = (f", from {fmt_pct(r.control_mean)} to {fmt_pct(r.treatment_mean)}"
                 if r.control_mean is not None and r.treatment_mean is not None else "")
        pname = "q" if r.q_value is not None else "p"
        parts.append(f"the {METRIC_PHRASES.get(r.metric, r.metric)} on {where} {fmt_pts(r.delta)} points{moved} "
                     f"({pname} = {fmt_p(r.decisive_p)})")
    return f"Also significant at temperature {temp} (q < 0.05): " + "; ".join(parts) + "."


def results_table(rows: list[EffectRow], means: pd.DataFrame | None, temp: str, type_: str) -> Table:
    """Control vs treatment per metric with the paired delta, interval, p and q values."""
    body = []
    for r in rows:
        if r.temp != temp or r.type != type_ or r.dataset is not None:
            continue
        control, treatment = row_means(r, means)
        mark = " *" if r.significant else ""
        body.append([METRIC_LABELS.get(r.metric, r.metric), fmt_pct(control), fmt_pct(treatment),
                     fmt_pts(r.delta) + mark, fmt_ci(r), fmt_p(r.p_value), fmt_p(r.q_value),
                     fmt_p(r.perm_p), fmt_num(r.n_items)])
    return Table(["metric", "control", "treatment", "delta (pts)", "95% CI (pts)", "p (Wilcoxon)", "q (BH)",
                  "p (permutation)", "paired items"], body,
                 caption="Means over paired items; delta = treatment - control; * = q < 0.05 (p when FDR is off).")


def subgroup_table(rows: list[EffectRow], temp: str, type_: str) -> Table | None:
    body = [[r.dataset or "", METRIC_LABELS.get(r.metric, r.metric), fmt_pts(r.delta) + (" *" if r.significant else ""),
             fmt_ci(r), fmt_p(r.p_value), fmt_p(r.q_value), fmt_num(r.n_items)]
            for r in rows if r.temp == temp and r.type == type_ and r.dataset is not None]
    if not body:
        return None
    return Table(["dataset", "metric", "delta (pts)", "95% CI (pts)", "p (Wilcoxon)", "q (BH)", "paired items"], body,
                 caption="The same comparison within each dataset.")


def meta_subgroup_table(block: dict[str, Any], temp: str, type_: str) -> Table | None:
    """The same comparison within each group of ``stats.subgroups`` (meta.<field> labels), or None."""
    body = []
    for group, label, sub in meta_subgroup_rows(block):
        metrics = sub.get("metrics") if isinstance(sub.get("metrics"), dict) else {}
        for metric in metric_names(metrics):
            r = effect_from_metric(temp, type_, metric, label, metrics[metric])
            body.append([group, label, METRIC_LABELS.get(metric, metric), fmt_pts(r.delta) + (" *" if r.significant else ""),
                         fmt_ci(r), fmt_p(r.p_value), fmt_p(r.q_value), fmt_num(r.n_items)])
    if not body:
        return None
    return Table(["group", "label", "metric", "delta (pts)", "95% CI (pts)", "p (Wilcoxon)", "q (BH)", "paired items"],
                 body, caption="The same comparison within each group of stats.subgroups (the items' meta labels); "
                               "its tests are in the trial's one FDR family.")


def describe(obj: Any, depth: int = 0) -> str:
    """A compact 'key = value' rendering of a statistics sub-object (meta, tost, mcnemar)."""
    if isinstance(obj, dict):
        parts = []
        for key, val in obj.items():
            if isinstance(val, dict) and depth < 1:
                parts.append(f"{key}: ({describe(val, depth + 1)})")
            elif isinstance(val, (list, tuple)) and all(isinstance(v, (int, float)) or v is None for v in val):
                parts.append(f"{key} = [{', '.join(fmt_num(v, 3) for v in val)}]")
            elif not isinstance(val, (dict, list)):
                parts.append(f"{key} = {fmt_num(val, 3)}")
        return ", ".join(parts)
    return fmt_num(obj, 3)


def mcnemar_sentence(block: dict[str, Any]) -> str | None:
    m = block.get("mcnemar")
    if not isinstance(m, dict):
        return None
    b, c = m.get("b"), m.get("c")
    text = (f"McNemar on EM (item right when mean EM >= 0.5): treatment fixed {plural(b, 'item')} that control "
            f"got wrong and broke {fmt_num(c)} that control got right; exact p = {fmt_p(m.get('p_exact'))}")
    if m.get("q_value") is not None:
        text += f", q = {fmt_p(m.get('q_value'))}"
    if m.get("odds_ratio") is not None:
        text += f", odds ratio {fmt_num(m.get('odds_ratio'), 3)}"
    return text + "."
