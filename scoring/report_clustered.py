"""The report's clustered figures (issue 27, item 1): where open-book items share paragraphs, the headline
takes its interval and p from significance.json's ``clustered`` entry (scoring/clustered.py).

Why a module of its own: the item-level reader (report_sig) and the wording (report_text) stay as they
are; this only swaps the headline's interval and test, and writes one line of the clustering beside
McNemar's sentence.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from scoring.clustered import PARAGRAPH  # a block whose clusters hold more than one item
from scoring.report_sig import EffectRow, _interval, num


def _clustered_of(sig: dict[str, Any] | None, temp: str, type_: str) -> dict[str, Any] | None:
    results = (sig or {}).get("results")
    block = ((results or {}).get(temp) or {}).get(type_) if isinstance(results, dict) else None
    cl = block.get("clustered") if isinstance(block, dict) else None
    return cl if isinstance(cl, dict) and cl.get("unit") == PARAGRAPH else None


# Fewer paragraphs than this: a percentile cluster bootstrap covers well under 95 % itself (74-84 % with 6,
# about 90 % with 20: tools/coverage_sim.py --paragraphs N), so the headline keeps the item-level figures
# and says the items share too few paragraphs to correct for (docs/statistics.md, Clustered inference).
MIN_HEADLINE_PARAGRAPHS = 20


def prefer_clustered(row: EffectRow, sig: dict[str, Any] | None) -> EffectRow:
    """``row`` with the clustered interval, permutation p and its q (the clustered BH family) when its
    block's items share at least MIN_HEADLINE_PARAGRAPHS paragraphs; with fewer, the item-level row and a
    note; unchanged otherwise (closed-book, older files, one item a paragraph)."""
    cl = _clustered_of(sig, row.temp, row.type)
    metric = (cl.get("metrics") or {}).get(row.metric) if cl else None
    if row.dataset is not None or not isinstance(metric, dict):
        return row
    n_clusters = int(cl.get("n_clusters") or 0)
    if n_clusters < MIN_HEADLINE_PARAGRAPHS:
        return dataclasses.replace(row, clustered_note=(
            f"the {row.n_items} items share only {n_clusters} paragraphs, too few to correct the interval for "
            "clustering (read it as too narrow)"))
    low, high = _interval(metric.get("ci_95"))
    return dataclasses.replace(row, ci_low=low, ci_high=high, p_value=num(metric.get("perm_p_value")),
                               q_value=num(metric.get("q_value")), clustered=PARAGRAPH)


def clustered_sentence(block: dict[str, Any]) -> str | None:
    """One line: paragraphs, design effect of EM and the cluster-adjusted McNemar; None without paragraphs."""
    cl = block.get("clustered")
    if not isinstance(cl, dict) or cl.get("unit") != PARAGRAPH:
        return None
    m = cl.get("mcnemar") if isinstance(cl.get("mcnemar"), dict) else {}
    em = (cl.get("metrics") or {}).get("em") or {}
    deff, chi2, p, q = (num(em.get("design_effect")), num(m.get("chi2")), num(m.get("p_value")),
                        num(m.get("q_value")))
    text = (f"Clustered by paragraph: {cl.get('n_clusters')} paragraphs, {num(cl.get('mean_cluster_size')) or 0:.1f} "
            f"items each on average; design effect of EM {'n/a' if deff is None else f'{deff:.2f}'}; McNemar "
            f"adjusted for clusters (Durkalski et al. 2003) chi2 = {'n/a' if chi2 is None else f'{chi2:.3g}'}, "
            f"p = {'n/a' if p is None else f'{p:.3g}'}")
    return text + (f", q = {q:.3g}." if q is not None else ".")
