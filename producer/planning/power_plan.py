"""``plan``'s power lines (issue 27, item 3): the change each primary metric can detect with the configured
sizes, and with ``--effect`` the items that change needs, from the exact McNemar power (scoring/power.py).

Why in plan: before paying for a run, "will this size show anything?" must have an answer; the assumed
discordance (how often the two prompts disagree on an item) is the one guess, and the lines say so.
"""

from __future__ import annotations

from typing import Any

from producer.planning.plan import Plan
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
            per_type.setdefault(cfg.dataset_type(d.name), set()).add(d.name)
    blocks = sum(TESTS_PER_BLOCK[t] * (1 + (len(names) if len(names) > 1 else 0)) for t, names in per_type.items())
    return max(1, blocks * len(cfg.temps))


def _unanswerable(item: dict[str, Any]) -> bool:
    return bool(item.get("is_impossible")) or not item.get("answers")


def power_lines(plan: Plan, discordance: float = 0.10, effect_points: float | None = None) -> list[str]:
    """The lines; none when no dataset size is known yet."""
    cfg = plan.cfg
    open_items = [i for i in plan.items if cfg.dataset_type(str(i.get("dataset"))) == "open"]
    closed = [i for i in plan.items if cfg.dataset_type(str(i.get("dataset"))) == "closed"]
    if not open_items and not closed:
        return []
    m = family_size(plan)
    alpha = ALPHA / m
    out = [f"power (exact McNemar, {POWER:.0%}; discordance {discordance:g} assumed, --discordance to change; "
           f"alpha {ALPHA:g}/{m} = {alpha:.2g}, the FDR family of {m} tests when one effect is real):"]
    rows = [("false-answer rate", "unanswerable open-book", sum(map(_unanswerable, open_items))),
            ("EM", "open-book", len(open_items)), ("EM", "closed-book", len(closed))]
    for metric, what, n in rows:
        if not n:
            continue
        mde = min_detectable_effect(n, discordance, alpha, POWER)
        said = f"a change of {100 * mde:.1f} points" if mde is not None else "no change at all (too few items)"
        out.append(f"  {metric} on {n:,} {what} {'item' if n == 1 else 'items'}: detects {said}")
    if effect_points is not None:
        effect = effect_points / 100
        if 0 < effect <= discordance:
            need = items_needed(effect, discordance, alpha, POWER)
            out.append(f"  a change of {effect_points:g} points needs {need:,} paired items per metric and block "
                       f"(unanswerable ones for the false-answer rate)")
        else:
            out.append(f"  a change of {effect_points:g} points cannot happen at discordance {discordance:g}: "
                       "every change is a discordant item")
    return out
