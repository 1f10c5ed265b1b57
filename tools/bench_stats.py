"""Benchmark: the stats phase (significance.json) for 15,000 items x 2 temperatures, B = R = 5000.

Synthetic per-item scores: 5,000 SQuAD-v2 open items, 5,000 TriviaQA + 5,000 NQ-Open closed items, at
T = 0.0 (K = 1) and T = 0.7 (K = 5, per-item means); the open items sit 5 to a paragraph, as in the
SQuAD v2 dev set, so the clustered figures (scoring/clustered.py) are computed too. Target: < 1.5 s on a
2-core machine.
Baseline in the same run: the straightforward implementation (a Python loop over B bootstrap resamples
with rng.choice, and over R sign-flip permutations) timed on one metric and extrapolated to the same
number of (metric, block) computations.

    python tools/bench_stats.py [--items 15000] [--samples 5000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from config.contract import PER_ITEM_COLUMNS, item_key  # noqa: E402
from config.schema import StatsConfig  # noqa: E402

TOKEN_F1 = np.array(sorted({2 * c / (p + g) for p in range(1, 6) for g in range(1, 6)
                             for c in range(0, min(p, g) + 1)}))


def synthetic_per_item(n_items: int, seed: int = 3, continuous_f1: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    third = n_items // 3
    datasets = ["squad_v2"] * third + ["triviaqa"] * third + ["nq_open"] * (n_items - 2 * third)
    rows = []
    for temp, k in (("0.0", 1), ("0.7", 5)):
        base = rng.uniform(0.2, 0.8, n_items)
        for cond, shift in (("control", 0.0), ("treatment", 0.03)):
            p = np.clip(base + shift, 0, 1)
            em = rng.binomial(k, p) / k
            abst = rng.binomial(k, 0.15, n_items) / k
            fa = rng.binomial(k, 0.2 - shift, n_items) / k
            uns = rng.binomial(k, 0.1, n_items) / k
            # token F1 of short answers: ratios of small integers, averaged over K samples
            partial = (rng.uniform(0, 1, n_items) if continuous_f1
                       else rng.choice(TOKEN_F1, size=(n_items, k)).mean(axis=1))
            f1 = np.clip(em + partial * (1 - em), 0, 1)
            contains = np.maximum(em, rng.binomial(k, np.clip(p + 0.2, 0, 1)) / k)  # a wordy right answer counts
            for i, ds in enumerate(datasets):
                open_ = ds == "squad_v2"
                rows.append({"item_key": item_key(ds, f"i{i}"), "type": "open" if open_ else "closed",
                             "condition": cond, "temp": temp, "em": em[i], "em_std": 0.0,
                             "abstain_rate": abst[i], "abstain_rate_std": 0.0,
                             "contains_answer": contains[i], "contains_answer_std": 0.0,
                             "f1": f1[i] if open_ else np.nan, "f1_std": 0.0 if open_ else np.nan,
                             "false_answer_rate": fa[i] if open_ else np.nan,
                             "false_answer_rate_std": 0.0 if open_ else np.nan,
                             "unsupported_rate": uns[i] if open_ else np.nan,
                             "unsupported_rate_std": 0.0 if open_ else np.nan})
    return pd.DataFrame(rows)[list(PER_ITEM_COLUMNS)]


def synthetic_clusters(per_item: pd.DataFrame, per_paragraph: int = 5) -> dict[str, str]:
    """Open-book item i on paragraph i // per_paragraph; closed-book items are their own clusters."""
    keys = per_item.loc[per_item["type"] == "open", "item_key"].unique()
    return {k: f"p{int(k.rsplit('|', 1)[1][1:]) // per_paragraph}" for k in keys}


def loop_reference(d: np.ndarray, b: int, r: int, seed: int = 0) -> float:
    """Python-loop bootstrap + permutation for one metric; returns seconds."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    means = [rng.choice(d, size=len(d), replace=True).mean() for _ in range(b)]
    np.percentile(means, [2.5, 97.5])
    obs = abs(d.mean())
    hits = sum(abs((d * rng.choice([-1.0, 1.0], size=len(d))).mean()) >= obs for _ in range(r))
    (hits + 1) / (r + 1)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=15_000)
    parser.add_argument("--samples", type=int, default=5000, help="B = R")
    parser.add_argument("--continuous-f1", action="store_true",
                        help="worst case: every item's F1 distinct (real token F1 takes few values)")
    args = parser.parse_args()
    per_item = synthetic_per_item(args.items, continuous_f1=args.continuous_f1)
    cfg = StatsConfig(bootstrap_samples=args.samples, permutation_samples=args.samples)
    from scoring.stats import build_significance

    build_significance(synthetic_per_item(300), cfg)  # warm-up: imports, scipy dispatch
    t0, c0 = time.perf_counter(), time.process_time()
    sig = build_significance(per_item, cfg, synthetic_clusters(per_item))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    n_metric_blocks = sum(1 + len(block["subgroups"]["dataset"]) * (len(block["subgroups"]["dataset"]) > 1)
                          for per_type in sig["results"].values() for block in per_type.values()
                          for _ in block["metrics"])
    sub = per_item[(per_item["temp"] == "0.7") & (per_item["type"] == "closed")]
    d = (sub[sub["condition"] == "treatment"]["em"].to_numpy() - sub[sub["condition"] == "control"]["em"].to_numpy())
    ref_b = max(50, args.samples // 50)
    one = loop_reference(d, ref_b, ref_b) * (args.samples / ref_b)
    baseline = one * n_metric_blocks
    print(f"stats phase: {args.items:,} items x 2 temperatures, B = R = {args.samples}: {elapsed:.2f} s "
          f"wall, {cpu:.2f} s CPU (target < 1.5 s, clustered figures included; {n_metric_blocks} metric blocks; load average "
          f"{os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan'):.1f})")
    print(f"baseline Python-loop bootstrap+permutation ({ref_b} of {args.samples} iterations on one "
          f"{len(d)}-item metric, extrapolated x{n_metric_blocks}): {baseline:.1f} s; speed-up x{baseline / elapsed:.0f}")


if __name__ == "__main__":
    main()
