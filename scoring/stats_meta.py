"""Across-dataset meta-analysis, TOST non-inferiority and selective risk (CONTRACT section 7).

- meta: per metric, each dataset's mean delta y_k with variance v_k = var(d_k, n-1) / n_k. Fixed effect:
  inverse-variance weights w = 1/v. Heterogeneity Q = sum w (y - fixed)^2 on k-1 df, I^2 =
  max(0, (Q - df) / Q), DerSimonian–Laird tau^2 = max(0, (Q - df) / (sum w - sum w^2 / sum w)); random
  effects use w* = 1 / (v + tau^2). Estimates come with a 95% normal CI and a two-sided z p-value.
  Needs >= 2 datasets with v > 0 for that metric, else null (reason in ``note``).
- tost: paired t on d for non-inferiority (H0: delta <= -margin, p_lower) and, for equivalence, also
  H0: delta >= +margin (p_upper); non_inferior when p_lower < alpha; equivalent when both are < alpha;
  all three undecided (null) when every difference is the same (no item changed: nothing to test).
- selective_risk: confidence of an item = 1 - abstain_rate (share of its samples that answered). At
  threshold t an item is covered when confidence >= t and > 0 (an item that always abstained is never
  covered). coverage = covered / all items; selective_accuracy = mean em over covered items (null when
  none); risk = 1 - selective_accuracy. aurc: items ranked by confidence, highest first, ties entering
  together; risk(k) = 1 - mean em of the first k items (a tie group takes the risk after the whole
  group); aurc = mean of risk(k) over k = 1..n (all items, so coverage runs 1/n..1). Lower is better.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as sps

Z95 = 1.959963984540054


def _z_summary(est: float, se: float) -> dict[str, Any]:
    p = float(2 * sps.norm.sf(abs(est / se))) if se > 0 else None
    return {"estimate": est, "se": se, "ci_95": [est - Z95 * se, est + Z95 * se], "p_value": p}


def meta_analysis(effects: dict[str, tuple[float, float, int]]) -> dict[str, Any]:
    """``effects``: dataset -> (mean delta, variance of the mean, n). DerSimonian–Laird random effects."""
    usable = {k: v for k, v in effects.items() if v[1] is not None and v[1] > 0 and math.isfinite(v[1])}
    base = {"k": len(usable), "datasets": sorted(usable)}
    if len(usable) < 2:
        return {**base, "fixed": None, "random": None, "Q": None, "df": None, "Q_p_value": None,
                "I2": None, "tau2": None, "note": "needs >= 2 datasets with non-zero variance"}
    y = np.array([usable[k][0] for k in sorted(usable)])
    v = np.array([usable[k][1] for k in sorted(usable)])
    w = 1 / v
    fixed = float((w * y).sum() / w.sum())
    q = float((w * (y - fixed) ** 2).sum())
    df = len(y) - 1
    c = float(w.sum() - (w**2).sum() / w.sum())
    tau2 = max(0.0, (q - df) / c) if c > 0 else 0.0
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    ws = 1 / (v + tau2)
    rand = float((ws * y).sum() / ws.sum())
    return {**base, "fixed": _z_summary(fixed, math.sqrt(1 / w.sum())),
            "random": _z_summary(rand, math.sqrt(1 / ws.sum())), "Q": q, "df": df,
            "Q_p_value": float(sps.chi2.sf(q, df)), "I2": i2, "tau2": tau2, "note": None}


def tost(d: np.ndarray, margin: float, alpha: float) -> dict[str, Any]:
    """Paired-t non-inferiority (and equivalence) of d = treatment - control against +/- margin."""
    d = d[np.isfinite(d)]
    n = len(d)
    out: dict[str, Any] = {"margin": margin, "alpha": alpha, "n_items": n, "delta_mean": None, "se": None,
                           "df": None, "p_lower": None, "p_upper": None, "p_equivalence": None,
                           "ci_lower_one_sided": None, "non_inferior": None, "equivalent": None}
    if n < 2:
        return out
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n))
    df = n - 1
    if se == 0:  # every item's difference is the same (often: no item changed): no variance to test
        out.update(delta_mean=mean, se=se, df=df)
        return out
    else:
        p_lower = float(sps.t.sf((mean + margin) / se, df))
        p_upper = float(sps.t.cdf((mean - margin) / se, df))
        lower = mean - float(sps.t.ppf(1 - alpha, df)) * se
    out.update(delta_mean=mean, se=se, df=df, p_lower=p_lower, p_upper=p_upper,
               p_equivalence=max(p_lower, p_upper), ci_lower_one_sided=lower,
               non_inferior=p_lower < alpha, equivalent=max(p_lower, p_upper) < alpha)
    return out


def selective_risk_curve(abstain_rate: np.ndarray, em: np.ndarray, thresholds: list[float]) -> dict[str, Any]:
    """Coverage, selective accuracy and risk per threshold, and the AURC, for one condition."""
    keep = np.isfinite(abstain_rate) & np.isfinite(em)
    conf, em = 1 - abstain_rate[keep], em[keep]
    n = len(conf)
    points = []
    for t in thresholds:
        covered = (conf >= t) & (conf > 0)
        k = int(covered.sum())
        acc = float(em[covered].mean()) if k else None
        points.append({"threshold": float(t), "n_covered": k, "coverage": k / n if n else None,
                       "selective_accuracy": acc, "risk": None if acc is None else 1 - acc})
    aurc = None
    if n:
        order = np.argsort(-conf, kind="stable")
        c_sorted, cum_err = conf[order], np.cumsum(1 - em[order])
        # end of each tie group: the risk every member of the group takes
        group_end = np.searchsorted(-c_sorted, -c_sorted, side="right") - 1
        risk = cum_err[group_end] / (group_end + 1)
        aurc = float(risk.mean())
    return {"thresholds": points, "aurc": aurc}
