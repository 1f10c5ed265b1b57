"""``plan``'s power lines (issue 27, item 3): the change each primary metric can detect with the configured
sizes, and with ``--effect`` the items that change needs, from the exact McNemar power (scoring/power.py).

Why in plan: before paying for a run, "will this size show anything?" must have an answer; the assumed
discordance (how often the two prompts disagree on an item) is the one guess, and the lines say so.
With ``--pilot RUN_ID`` the guess is replaced by what a pilot run saw, per type: its discordance
(b + c) / n from McNemar, and its design effect (how much answers that move together on one paragraph
inflate McNemar's variance, significance.json ``clustered.mcnemar.design_effect``). n items that
cluster carry the evidence of n / design effect independent ones, so the detectable change is the one
of n / deff items and an effect needs deff times the items.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.contract import SIGNIFICANCE_JSON
from producer.host.console import UserError
from producer.planning.plan import Plan
from producer.runs.layout import RunLayout, validate_run_id
from scoring.power import items_needed, min_detectable_effect

POWER = 0.8
ALPHA = 0.05
TESTS_PER_BLOCK = {"open": 7, "closed": 4}  # McNemar + one Wilcoxon per metric (scoring/stats.py METRICS)


def family_size(plan: Plan) -> int:
    """The tests of the run's FDR family: per temperature and type, one block plus one per dataset when a
    type has several datasets."""
    cfg = plan.cfg
    per_type: dict[str, set[str]] = {}
    for d in plan.datasets:
        if d.selected:
            for type_ in cfg.dataset_types(d.name):
                per_type.setdefault(type_, set()).add(d.name)
    blocks = sum(TESTS_PER_BLOCK[t] * (1 + (len(names) if len(names) > 1 else 0)) for t, names in per_type.items())
    return max(1, blocks * len(cfg.temps))


@dataclass(frozen=True)
class PilotType:
    """What a pilot run saw on one type, pooled over its trials and temperatures."""

    n_items: int
    discordance: float  # sum (b + c) / sum n_items
    design_effect: float  # sum_g (b_g - c_g)^2 / sum (b + c): 1 without clusters (or an older file)


@dataclass(frozen=True)
class Pilot:
    run_id: str
    path: Path
    trials: int
    types: dict[str, PilotType]


def read_pilot(experiments_dir: Path, run_id: str) -> Pilot:
    """The pilot run's discordance and design effect per type, from every trial's significance.json;
    a UserError (one line, exit 2) when the run or its statistics are not there."""
    validate_run_id(run_id)
    folder = RunLayout.find_folder(Path(experiments_dir), run_id)
    if not folder.path.is_dir():
        raise UserError(f"pilot run {run_id!r} not found: no folder {folder.path}")
    trials = folder.trials_with(SIGNIFICANCE_JSON)
    if not trials:
        raise UserError(f"pilot run {run_id!r} has no {SIGNIFICANCE_JSON} yet: analyse it first "
                        f"(python -m producer analyse)")
    sums: dict[str, list[float]] = {}  # type -> [n, b + c, sum_g D_g^2]
    for trial in trials:
        path = trial.results_dir / SIGNIFICANCE_JSON
        try:
            sig = json.loads(path.read_text(encoding="utf-8"))
            blocks = [(t, b) for per_type in sig["results"].values() for t, b in per_type.items()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"cannot read the pilot's {path}: {type(exc).__name__}") from None
        for type_, block in blocks:
            m = block.get("mcnemar") or {}
            n, disc = block.get("n_items") or 0, (m.get("b") or 0) + (m.get("c") or 0)
            deff = ((block.get("clustered") or {}).get("mcnemar") or {}).get("design_effect")
            acc = sums.setdefault(type_, [0.0, 0.0, 0.0])
            acc[0] += n
            acc[1] += disc
            acc[2] += disc * (deff if isinstance(deff, (int, float)) else 1.0)
    types = {t: PilotType(int(n), d / n, max(1.0, sq / d) if d else 1.0) for t, (n, d, sq) in sums.items() if n}
    return Pilot(run_id, folder.path, len(trials), types)


def _unanswerable(item: dict[str, Any]) -> bool:
    return bool(item.get("is_impossible")) or not item.get("answers")


def power_lines(plan: Plan, discordance: float = 0.10, effect_points: float | None = None,
                pilot: Pilot | None = None) -> list[str]:
    """The lines; none when no dataset size is known yet. With ``pilot``, each type's discordance and
    design effect come from it (a type the pilot did not have keeps ``discordance``, design effect 1)."""
    cfg = plan.cfg
    open_items = [i for i in plan.items if cfg.item_type(i) == "open"]
    closed = [i for i in plan.items if cfg.item_type(i) == "closed"]
    if not open_items and not closed:
        return []
    m = family_size(plan)
    alpha = ALPHA / m
    per_type = {t: (discordance, 1.0) for t in ("open", "closed")}
    if pilot is None:
        source = f"discordance {discordance:g} assumed, --discordance to change"
    else:
        per_type.update({t: (p.discordance, p.design_effect) for t, p in pilot.types.items()})
        seen = ", ".join(f"{t}-book discordance {p.discordance:.3g} and design effect {p.design_effect:.2f} "
                         f"on {p.n_items:,} paired items" for t, p in sorted(pilot.types.items(), reverse=True))
        source = f"from pilot run {pilot.run_id} ({pilot.trials} trial{'s' if pilot.trials != 1 else ''}: {seen})"
    out = [f"power (exact McNemar, {POWER:.0%}; {source}; "
           f"alpha {ALPHA:g}/{m} = {alpha:.2g}, the FDR family of {m} tests when one effect is real):"]
    if pilot is not None:
        out.append(f"  pilot: {pilot.path}")
    rows = [("false-answer rate", "unanswerable open-book", sum(map(_unanswerable, open_items)), "open"),
            ("EM", "open-book", len(open_items), "open"), ("EM", "closed-book", len(closed), "closed")]
    for metric, what, n, type_ in rows:
        if not n:
            continue
        psi, deff = per_type[type_]
        mde = min_detectable_effect(int(n / deff), psi, alpha, POWER) if psi > 0 else None
        said = f"a change of {100 * mde:.1f} points" if mde is not None else "no change at all (too few items)"
        out.append(f"  {metric} on {n:,} {what} {'item' if n == 1 else 'items'}: detects {said}")
    if effect_points is not None:
        effect = effect_points / 100
        for type_ in sorted({r[3] for r in rows if r[2]}, reverse=True) if pilot is not None else [None]:
            psi, deff = per_type[type_] if type_ else (discordance, 1.0)
            where = f" ({type_}-book)" if type_ else ""
            if 0 < effect <= psi:
                need = math.ceil(items_needed(effect, psi, alpha, POWER) * deff)
                which = "" if type_ == "closed" else " (unanswerable ones for the false-answer rate)"
                out.append(f"  a change of {effect_points:g} points needs {need:,} paired items per metric and block"
                           f"{where}{which}")
            else:
                out.append(f"  a change of {effect_points:g} points cannot happen at discordance {psi:.3g}{where}: "
                           "every change is a discordant item")
    return out
