"""One verdict per metric and block (docs/statistics.md, "Verdicts"): the decision a reader takes away.

Why: five numbers per metric (delta, interval, Wilcoxon p, its FDR q, TOST) leave the reader to combine
them, and a block where no item changed looked "equivalent" (a TOST on zero variance). The rule, in order:

1. inconclusive when fewer than 2 paired items, or every item's difference is the same (no item changed):
   there is nothing to test, never "equivalent";
2. better / worse when the Wilcoxon test is significant after FDR (q, else p, below alpha), by the
   metric's good direction (EM and F1 up, false and unsupported answers down); higher / lower for a metric
   without one (abstention);
3. equivalent when not significant and TOST puts the whole difference within +/- the configured margin;
4. inconclusive otherwise (not significant, and not shown to be within the margin).
"""

from __future__ import annotations

from typing import Any

from scoring.fdr import all_subgroups

# +1: higher is better, -1: lower is better, 0: no preferred direction.
METRIC_GOOD = {"em": 1, "f1": 1, "false_answer_rate": -1, "unsupported_rate": -1, "abstain_rate": 0,
               "contains_answer": 1}
ALPHA = 0.05  # the significance level of every decision (after FDR)
VERDICTS = ("better", "worse", "higher", "lower", "equivalent", "inconclusive")


def metric_verdict(metric: str, block: dict[str, Any], tost: dict[str, Any] | None, alpha: float) -> dict[str, str]:
    """{"verdict", "reason"} for one metric's statistics (``block``: its entry in a BLOCK's ``metrics``)."""
    n, delta, sd = block.get("n_items") or 0, block.get("delta_mean"), block.get("sd_delta")
    if n < 2 or delta is None or not sd:
        return {"verdict": "inconclusive", "reason": "no item changed between the conditions: nothing to test"
                if n >= 2 else "fewer than 2 paired items"}
    wilcoxon = block.get("wilcoxon") or {}
    q = wilcoxon.get("q_value", wilcoxon.get("p_value"))
    which = "q" if wilcoxon.get("q_value") is not None else "p"
    if q is not None and q < alpha and delta != 0:
        good = METRIC_GOOD.get(metric, 0)
        if good == 0:
            word = "higher" if delta > 0 else "lower"
        else:
            word = "better" if good * delta > 0 else "worse"
        return {"verdict": word, "reason": f"Wilcoxon {which} = {q:.3g} < {alpha:g} after FDR"}
    if tost and tost.get("equivalent"):
        margin = float(tost["margin"])
        return {"verdict": "equivalent", "reason": f"not significant, and TOST keeps the difference within "
                                                   f"+/-{100 * margin:g} points"}
    within = "no equivalence margin is set for it" if not tost else "TOST does not keep it within the margin"
    return {"verdict": "inconclusive", "reason": f"not significant ({which} = {q:.3g}) and {within}"
            if q is not None else f"no test ({within})"}


def add_verdicts(results: dict[str, dict[str, dict[str, Any]]], alpha: float) -> None:
    """A ``verdict`` in every metric of every BLOCK and dataset subgroup of significance.json (in place,
    after FDR)."""
    def one(block: dict[str, Any]) -> None:
        tosts = block.get("tost") or {}
        for metric, stats in (block.get("metrics") or {}).items():
            stats["verdict"] = metric_verdict(metric, stats, tosts.get(metric), alpha)
        for sub in all_subgroups(block):
            one(sub)

    for per_type in results.values():
        for block in per_type.values():
            one(block)
