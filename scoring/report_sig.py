"""Read significance.json (CONTRACT section 7, schema_version 2) into flat rows for tables and plots.

Why: the report, the figures and the multi-trial summary all need "the delta, its interval and its
p/q values for (temp, type, metric[, dataset])"; one reader keeps them consistent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from config.contract import CONDITIONS
from scoring.verdicts import ALPHA

METRIC_ORDER = ("false_answer_rate", "em", "f1", "contains_answer", "abstain_rate", "unsupported_rate")


@dataclass(frozen=True)
class EffectRow:
    """One paired comparison: treatment - control for one metric in one (temp, type[, dataset])."""

    temp: str
    type: str
    metric: str
    dataset: str | None  # None = all datasets of the type
    n_items: int | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None  # Wilcoxon signed-rank
    q_value: float | None  # Benjamini-Hochberg across the file
    perm_p: float | None
    control_mean: float | None = None  # on the paired items, when the stats file records it
    treatment_mean: float | None = None
    verdict: str | None = None  # better / worse / higher / lower / equivalent / inconclusive (verdicts.py)
    verdict_reason: str | None = None
    clustered: str | None = None  # "paragraph": interval and p from significance.json's clustered entry
    clustered_note: str | None = None  # why the headline kept item-level figures where paragraphs exist

    @property
    def decisive_p(self) -> float | None:
        """The q-value when FDR was applied, else the raw p-value."""
        return self.q_value if self.q_value is not None else self.p_value

    @property
    def significant(self) -> bool:
        p = self.decisive_p
        return p is not None and p < ALPHA


def num(value: Any) -> float | None:
    """A finite float or None (strict JSON uses null for undefined statistics)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _interval(value: Any) -> tuple[float | None, float | None]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return num(value[0]), num(value[1])
    if isinstance(value, dict):
        return num(value.get("low", value.get("lower"))), num(value.get("high", value.get("upper")))
    return None, None


def effect_from_metric(temp: str, type_: str, metric: str, dataset: str | None, block: dict[str, Any]) -> EffectRow:
    wil = block.get("wilcoxon") if isinstance(block.get("wilcoxon"), dict) else {}
    low, high = _interval(block.get("ci_95"))
    n = block.get("n_items")
    return EffectRow(temp, type_, metric, dataset, int(n) if isinstance(n, (int, float)) and not isinstance(n, bool) else None,
                     num(block.get("delta_mean")), low, high, num(wil.get("p_value")), num(wil.get("q_value")),
                     num(block.get("perm_p_value")), num(block.get("control_mean")), num(block.get("treatment_mean")),
                     *_verdict_of(block))


def _verdict_of(block: dict[str, Any]) -> tuple[str | None, str | None]:
    v = block.get("verdict") if isinstance(block.get("verdict"), dict) else {}
    return (str(v["verdict"]) if v.get("verdict") else None), (str(v["reason"]) if v.get("reason") else None)


def temps(sig: dict[str, Any]) -> list[str]:
    """Temperature labels in the file's order (``temps`` first, then any extra result keys)."""
    results = sig.get("results") if isinstance(sig.get("results"), dict) else {}
    order = [str(t) for t in sig.get("temps") or [] if str(t) in results]
    return order + [t for t in results if t not in order]


def blocks(sig: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(temp, type, BLOCK) for every block, open before closed."""
    results = sig.get("results") if isinstance(sig.get("results"), dict) else {}
    for temp in temps(sig):
        per_type = results.get(temp)
        if not isinstance(per_type, dict):
            continue
        for type_ in ("open", "closed"):
            block = per_type.get(type_)
            if isinstance(block, dict):
                yield temp, type_, block


def metric_names(metrics: dict[str, Any]) -> list[str]:
    known = [m for m in METRIC_ORDER if isinstance(metrics.get(m), dict)]
    return known + [m for m in metrics if m not in known and isinstance(metrics[m], dict)]


def subgroup_blocks(block: dict[str, Any]) -> dict[str, dict[str, Any]]:
    subs = block.get("subgroups")
    datasets = subs.get("dataset") if isinstance(subs, dict) else None
    return {str(k): v for k, v in datasets.items() if isinstance(v, dict)} if isinstance(datasets, dict) else {}


def meta_subgroup_rows(block: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(field, label, BLOCK) for each ``stats.subgroups`` group of a BLOCK (every kind but ``dataset``)."""
    subs = block.get("subgroups") if isinstance(block.get("subgroups"), dict) else {}
    return [(str(field), str(label), sub) for field, groups in subs.items() if field != "dataset"
            and isinstance(groups, dict) for label, sub in groups.items() if isinstance(sub, dict)]


def effect_rows(sig: dict[str, Any], with_subgroups: bool = True) -> list[EffectRow]:
    """Every metric effect in the file; dataset subgroups only when a type has more than one dataset."""
    rows: list[EffectRow] = []
    for temp, type_, block in blocks(sig):
        metrics = block.get("metrics") if isinstance(block.get("metrics"), dict) else {}
        for metric in metric_names(metrics):
            rows.append(effect_from_metric(temp, type_, metric, None, metrics[metric]))
        subs = subgroup_blocks(block)
        if with_subgroups and len(subs) > 1:
            for name, sub in subs.items():
                sub_metrics = sub.get("metrics") if isinstance(sub.get("metrics"), dict) else {}
                for metric in metric_names(sub_metrics):
                    rows.append(effect_from_metric(temp, type_, metric, name, sub_metrics[metric]))
    return rows


def find_effect(rows: list[EffectRow], temp: str, type_: str, metric: str) -> EffectRow | None:
    for row in rows:
        if row.temp == temp and row.type == type_ and row.metric == metric and row.dataset is None:
            return row
    return None


def _curve_points(obj: Any) -> list[dict[str, float]]:
    """Points (threshold, coverage, risk, selective_accuracy) from the shapes a curve may take."""
    points: list[dict[str, float]] = []
    if isinstance(obj, list):
        for p in obj:
            if isinstance(p, dict) and num(p.get("coverage")) is not None:
                points.append(p)
    elif isinstance(obj, dict):
        cov = obj.get("coverage")
        if isinstance(cov, list):  # parallel lists
            risk = obj.get("risk") or [None] * len(cov)
            acc = obj.get("selective_accuracy") or [None] * len(cov)
            thr = obj.get("thresholds") or obj.get("threshold") or [None] * len(cov)
            points = [{"coverage": c, "risk": r, "selective_accuracy": a, "threshold": t}
                      for c, r, a, t in zip(cov, risk, acc, thr, strict=False)]
        else:
            for key in ("points", "curve", "thresholds", "by_threshold"):
                if isinstance(obj.get(key), (list, dict)):
                    return _curve_points(obj[key])
            for key, val in obj.items():  # {"0.5": {"coverage":...}}
                if isinstance(val, dict) and num(val.get("coverage")) is not None:
                    points.append({"threshold": num(key), **val})
    out = []
    for p in points:
        cov = num(p.get("coverage"))
        risk = num(p.get("risk"))
        acc = num(p.get("selective_accuracy"))
        if risk is None and acc is not None:
            risk = 1.0 - acc
        if cov is not None and risk is not None:
            out.append({"threshold": num(p.get("threshold")), "coverage": cov, "risk": risk})
    return sorted(out, key=lambda p: p["coverage"])


def selective_curves(block: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{label: {"points": [...], "aurc": float|None}}; label is a condition when the file splits by it."""
    sel = block.get("selective_risk")
    if not isinstance(sel, dict) and not isinstance(sel, list):
        return {}
    if isinstance(sel, dict) and any(isinstance(sel.get(c), (dict, list)) for c in CONDITIONS):
        out = {}
        for cond in CONDITIONS:
            sub = sel.get(cond)
            points = _curve_points(sub)
            if points:
                aurc = num(sub.get("aurc")) if isinstance(sub, dict) else None
                out[cond] = {"points": points, "aurc": aurc}
        return out
    points = _curve_points(sel)
    aurc = num(sel.get("aurc")) if isinstance(sel, dict) else None
    return {"all": {"points": points, "aurc": aurc}} if points else {}


def all_tests(sig: dict[str, Any]) -> list[tuple[tuple[str, str, str | None, str], float | None]]:
    """Every test in the file as ((temp, type, dataset, metric or 'mcnemar'), raw p): the BH family."""
    out: list[tuple[tuple[str, str, str | None, str], float | None]] = []

    def collect(temp: str, type_: str, dataset: str | None, block: dict[str, Any]) -> None:
        m = block.get("mcnemar")
        if isinstance(m, dict):
            out.append(((temp, type_, dataset, "mcnemar"), num(m.get("p_exact"))))
        metrics = block.get("metrics") if isinstance(block.get("metrics"), dict) else {}
        for name in metric_names(metrics):
            wil = metrics[name].get("wilcoxon")
            out.append(((temp, type_, dataset, name), num(wil.get("p_value")) if isinstance(wil, dict) else None))

    for temp, type_, block in blocks(sig):
        collect(temp, type_, None, block)
        subs = subgroup_blocks(block)
        if len(subs) > 1:  # a lone subgroup repeats its type's block: not a separate test
            for name, sub in subs.items():
                collect(temp, type_, name, sub)
    return out
