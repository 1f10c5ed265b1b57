"""PNG figures for the report (matplotlib, Agg backend: no display needed, same on Windows and Linux).

Why: a forest plot shows at a glance which deltas are clear of zero; a risk-coverage curve shows what
abstaining buys. Each function writes one PNG and returns its path, or None when there is nothing to plot.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

from config.atomic import atomic_target
from scoring.report_sig import EffectRow
from scoring.report_text import METRIC_LABELS

matplotlib.use("Agg")
with warnings.catch_warnings():
    # matplotlib writes its font cache without an encoding on first import (its code, not ours)
    warnings.simplefilter("ignore", EncodingWarning)
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    font_manager.fontManager  # noqa: B018 - builds the cache inside this guard

SIG_COLOUR, NS_COLOUR = "#c0392b", "#555555"


def _save(fig: Any, path: Path) -> Path:
    """Through the atomic helper: a unique temp name (two reports never share one), replace with retry."""
    try:
        with atomic_target(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


MIN_HALF_WIDTH_PTS = 5.0  # an axis of +-0.04 "percentage points" reads as fractions (issue 29)


def x_limits(deltas: list[float], lows: list[float | None], highs: list[float | None]) -> tuple[float, float]:
    """Symmetric x limits in percentage points around 0: every point and interval, 10% headroom, and at
    least +-MIN_HALF_WIDTH_PTS, so deltas of 0 do not get an axis of +-0.04 points."""
    values = [abs(v) for v in [*deltas, *lows, *highs] if v is not None]
    half = max([MIN_HALF_WIDTH_PTS, *(1.1 * v for v in values)])
    return -half, half


def forest(labels: list[str], deltas: list[float], lows: list[float | None], highs: list[float | None],
           significant: list[bool], title: str, path: Path) -> Path | None:
    """Generic forest plot: points with 95% intervals (percentage points), red where significant."""
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.38 * len(labels) + 1.3))
    ys = list(range(len(labels)))[::-1]
    for y, d, lo, hi, sig in zip(ys, deltas, lows, highs, significant, strict=True):
        err = [[max(d - lo, 0.0) if lo is not None else 0.0], [max(hi - d, 0.0) if hi is not None else 0.0]]
        colour = SIG_COLOUR if sig else NS_COLOUR
        ax.errorbar(d, y, xerr=err, fmt="o", color=colour, capsize=3, markersize=5)
    ax.axvline(0, color="#999999", linewidth=1, linestyle="--")
    ax.set_xlim(*x_limits(deltas, lows, highs))
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xlabel("treatment - control (percentage points, 95% CI)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _pts(x: float | None) -> float | None:
    return None if x is None else 100 * x


def forest_plot(rows: list[EffectRow], temp: str, path: Path) -> Path | None:
    """Deltas (percentage points) with 95% intervals for one temperature, per metric and dataset."""
    rows = [r for r in rows if r.temp == temp and r.delta is not None]
    labels = [f"{METRIC_LABELS.get(r.metric, r.metric)} | {r.dataset or 'all ' + r.type}" for r in rows]
    return forest(labels, [100 * r.delta for r in rows], [_pts(r.ci_low) for r in rows],
                  [_pts(r.ci_high) for r in rows], [r.significant for r in rows],
                  f"Paired effects at temperature {temp} (red: q < 0.05)", path)


def risk_coverage_plot(curves: dict[str, dict[str, Any]], title: str, path: Path) -> Path | None:
    """Selective risk against coverage, one line per condition (or one for the file's single curve)."""
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    styles = {"control": ("#2c7fb8", "o"), "treatment": ("#d95f0e", "s"), "all": ("#333333", "o")}
    for label, curve in curves.items():
        pts = curve["points"]
        colour, marker = styles.get(label, ("#333333", "o"))
        name = label if curve.get("aurc") is None else f"{label} (AURC {curve['aurc']:.3f})"
        ax.plot([p["coverage"] for p in pts], [p["risk"] for p in pts], marker=marker, color=colour, label=name)
    ax.set_xlabel("coverage (share of items answered)")
    ax.set_ylabel("risk (share answered wrongly)")
    top = max(p["risk"] for c in curves.values() for p in c["points"])
    ax.set_xlim(-0.02, 1.05)
    ax.set_ylim(0, min(1.05, top * 1.25 + 0.05))  # headroom: points never sit on the frame
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path)


def telemetry_plot(df: pd.DataFrame, path: Path) -> Path | None:
    """Tokens/s and GPU memory over the run, from telemetry.csv; None when neither was recorded."""
    if df is None or df.empty or "t_s" not in df.columns:
        return None
    t = pd.to_numeric(df["t_s"], errors="coerce")
    tps = pd.to_numeric(df.get("tokens_per_s", pd.Series(dtype=float)), errors="coerce")
    mem = pd.to_numeric(df.get("gpu_mem_used_mib", pd.Series(dtype=float)), errors="coerce")
    has_tps, has_mem = tps.notna().any(), mem.notna().any()
    if not (has_tps or has_mem):
        return None
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    if has_tps:
        ax.plot(t, tps, color="#2c7fb8", label="tokens/s")
        ax.set_ylabel("completion tokens/s", color="#2c7fb8")
    if has_mem:
        ax2 = ax.twinx() if has_tps else ax
        ax2.plot(t, mem, color="#d95f0e", label="GPU memory (MiB)")
        ax2.set_ylabel("GPU memory used (MiB)", color="#d95f0e")
    ax.set_xlabel("seconds since start")
    ax.set_title("Throughput and GPU memory over the run", fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)
