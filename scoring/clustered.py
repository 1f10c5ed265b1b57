"""Clustered inference (issue 27, item 1): SQuAD v2 questions share paragraphs, and answers on one
paragraph move together, so intervals and tests that treat every item as independent are too narrow.

What this adds to each significance.json BLOCK, under ``clustered`` (docs/statistics.md, "Clustered
inference"; CONTRACT section 7):
- clusters: an open-book item's cluster is its paragraph, the sha256 of its context text (prepared items
  carry no paragraph id); a closed-book item is its own cluster. The K samples of an item are already
  one unit (per_item_scores.csv averages them), so they stay inside their item's cluster.
- cluster bootstrap (vectorised, see cluster_bootstrap_means): paragraphs are resampled with replacement; the items (and their samples) of a drawn
  paragraph come with it. Resampling only the top level is the standard choice (Davison & Hinkley 1997,
  section 3.8; Field & Welsh 2007): that level's variation already holds the items' and samples'
  variation, and resampling every level again would count it twice and widen the interval.
- cluster sign-flip permutation p of the mean (each paragraph's summed difference flipped as one).
- design effect = clustered variance of the mean delta / the item-level one, with the clustered
  variance v = G/(G-1) * sum_g (S_g - n_g * mean)^2 / N^2 (cluster-robust; equals s^2/N when every
  cluster has one item, so the design effect is then exactly 1).
- McNemar adjusted for clusters (Durkalski, Palesch, Lipsitz & Rust 2003, Stat Med 22:2417-2428):
  chi2 = (sum_g (b_g - c_g))^2 / sum_g (b_g - c_g)^2 on 1 df, b_g and c_g the discordant items of
  paragraph g. With one item per cluster it is McNemar's chi-square (b - c)^2 / (b + c) exactly; its
  design effect sum_g (b_g - c_g)^2 / (b + c) is how much clustering inflates McNemar's variance.
When every cluster has one item (closed-book, or no prepared items), the bootstrap interval and
permutation p are the item-level ones, copied: there is nothing to cluster.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from scipy import stats as sps

from config.contract import item_key
from scoring.fdr import all_subgroups, bh_qvalues
from scoring.stats_paired import CHUNK_CELLS, FEW_DISTINCT

PARAGRAPH = "paragraph"
ITEM = "item"
DURKALSKI = "Durkalski et al. 2003: (sum_g (b_g - c_g))^2 / sum_g (b_g - c_g)^2, chi-square 1 df"


def cluster_of_items(items: list[dict[str, Any]]) -> dict[str, str]:
    """item_key -> cluster id: an open-book item's paragraph (sha256 of its context text, first 16 hex
    digits), a closed-book item (no context) its own key."""
    out = {}
    for it in items:
        key = item_key(str(it["dataset"]), str(it["id"]))
        context = it.get("context")
        out[key] = ("ctx:" + hashlib.sha256(str(context).encode("utf-8")).hexdigest()[:16]) if context else key
    return out


def cluster_codes(keys: list[str], clusters: Mapping[str, str] | None) -> np.ndarray:
    """0..G-1 per item (numbered in order of first appearance); an item without a known cluster is its own."""
    if not clusters:
        return np.arange(len(keys), dtype=np.int64)
    index: dict[str, int] = {}
    return np.fromiter((index.setdefault(clusters.get(k, k), len(index)) for k in keys), dtype=np.int64,
                       count=len(keys))


def cluster_sums(values: np.ndarray, codes: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum of the finite values, count of them) per cluster."""
    ok = np.isfinite(values)
    return (np.bincount(codes[ok], weights=values[ok], minlength=n_clusters),
            np.bincount(codes[ok], minlength=n_clusters).astype(float))


def design_effect(d: np.ndarray, codes: np.ndarray) -> tuple[float | None, float | None]:
    """(clustered SE of mean(d), design effect) over the finite d; see the module docstring."""
    ok = np.isfinite(d)
    d, codes = d[ok], codes[ok]
    n = len(d)
    if n < 2:
        return None, None
    _, codes = np.unique(codes, return_inverse=True)
    g = int(codes.max()) + 1
    mean = float(d.mean())
    s, m = cluster_sums(d, codes, g)
    if g < 2:  # one paragraph: no between-cluster variation to estimate
        return None, None
    v_cl = g / (g - 1) * float(((s - m * mean) ** 2).sum()) / n ** 2
    v_iid = float(d.var(ddof=1)) / n
    return math.sqrt(v_cl), (v_cl / v_iid if v_iid > 0 else None)


def cluster_bootstrap_means(sums: np.ndarray, counts: np.ndarray, b: int, rng: np.random.Generator) -> np.ndarray:
    """B resampled means sum(S) / sum(n) over G clusters drawn with replacement (S, n: each cluster's sum
    and number of finite deltas).

    Why this shape (as scoring.stats_paired.bootstrap_means): a resample matters only through how often
    each distinct (S, n) pair is drawn, a Multinomial(G, frequencies) draw, so few distinct pairs (0/1
    metrics, K-sample means on paragraphs of ~5 items) cost B x m draws; otherwise index matrices are
    drawn in chunks."""
    g = len(sums)
    pairs, freq = np.unique(np.column_stack([sums, counts]), axis=0, return_counts=True)
    if len(pairs) <= max(FEW_DISTINCT, g // 8):  # a binomial draw costs ~8 index draws and sums
        draws = rng.multinomial(g, freq / g, size=b).astype(float)
        totals = draws @ pairs
    else:
        totals = np.empty((b, 2))
        equal_sizes = bool((counts == counts[0]).all())
        chunk = max(1, CHUNK_CELLS // g)
        for start in range(0, b, chunk):
            rows = min(chunk, b - start)
            idx = rng.integers(0, g, size=(rows, g), dtype=np.uint16 if g <= 2**16 else np.int64)
            totals[start:start + rows, 0] = np.take(sums, idx).sum(axis=1)
            # paragraphs of one size with every delta defined (the usual case): the denominator is fixed
            totals[start:start + rows, 1] = (g * counts[0] if equal_sizes else np.take(counts, idx).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals[:, 0] / totals[:, 1]


def cluster_bootstrap_ci(d: np.ndarray, codes: np.ndarray, b: int, rng: np.random.Generator,
                         level: float = 0.95) -> list[float] | None:
    """Percentile interval of mean(d) with paragraphs resampled with replacement B times (a resample
    that drew no finite delta, possible only when some are not applicable, is left out)."""
    if not np.isfinite(d).any():
        return None
    sums, counts = cluster_sums(d, codes, int(codes.max()) + 1)
    means = cluster_bootstrap_means(sums, counts, b, rng)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def cluster_perm_ps(deltas: dict[str, np.ndarray], codes: np.ndarray, r: int,
                    rng: np.random.Generator) -> dict[str, float | None]:
    """Two-sided sign-flip permutation p of each metric's mean delta with each cluster's sum flipped as
    one: (1 + #{|T*| >= |T|}) / (R + 1), as the item-level test. Why one draw for every metric: a flip
    of paragraph g is one random sign applied to every metric's S_g, so R x G sign bits and one matrix
    product give all metrics' R flipped sums (each metric's null distribution is exact)."""
    g = int(codes.max()) + 1
    names = [name for name, d in deltas.items() if np.isfinite(d).any()]
    out: dict[str, float | None] = {name: None for name in deltas}
    if not names:
        return out
    sums = np.column_stack([cluster_sums(deltas[name], codes, g)[0] for name in names])
    totals = sums.sum(axis=0)
    observed = np.abs(totals)
    tol = 1e-9 * np.maximum(1.0, observed)
    hits = np.zeros(len(names), dtype=np.int64)
    chunk = max(1, CHUNK_CELLS // g)
    for start in range(0, r, chunk):
        rows = min(chunk, r - start)
        raw = np.frombuffer(rng.bytes(rows * ((g + 7) // 8)), dtype=np.uint8).reshape(rows, -1)
        bits = np.unpackbits(raw, axis=1, count=g).astype(np.float64)
        flipped = np.abs(2 * (bits @ sums) - totals)
        hits += np.count_nonzero(flipped >= observed - tol, axis=0)
    out.update({name: float((1 + h) / (r + 1)) for name, h in zip(names, hits, strict=True)})
    return out


def clustered_mcnemar(control_right: np.ndarray, treatment_right: np.ndarray, codes: np.ndarray) -> dict[str, Any]:
    """Durkalski et al. (2003) McNemar for clustered matched pairs, and its design effect against
    McNemar's (b + c)."""
    g = int(codes.max()) + 1 if len(codes) else 0
    diff = (~control_right & treatment_right).astype(float) - (control_right & ~treatment_right).astype(float)
    per_cluster = np.bincount(codes, weights=diff, minlength=g)
    denom = float((per_cluster ** 2).sum())
    discordant = float(np.abs(diff).sum())
    chi2 = float(per_cluster.sum()) ** 2 / denom if denom > 0 else None
    return {"method": DURKALSKI, "chi2": chi2, "p_value": float(sps.chi2.sf(chi2, 1)) if chi2 is not None else 1.0,
            "design_effect": denom / discordant if discordant > 0 else None, "q_value": None}


def clustered_block(frame_keys: list[str], clusters: Mapping[str, str] | None, deltas: dict[str, np.ndarray],
                    control_right: np.ndarray, treatment_right: np.ndarray, item_metrics: dict[str, dict[str, Any]],
                    b: int, r: int, seed_seq: np.random.SeedSequence,
                    mapper: Callable[..., Iterable[dict[str, Any]]] = map) -> dict[str, Any]:
    """The ``clustered`` entry of one BLOCK (``item_metrics``: the block's item-level metrics, whose
    interval and permutation p are copied when no cluster holds more than one item)."""
    codes = cluster_codes(frame_keys, clusters)
    n = len(codes)
    g = int(codes.max()) + 1 if n else 0
    sizes = np.bincount(codes, minlength=g) if n else np.zeros(0, int)
    paragraphs = bool(n) and g < n
    out: dict[str, Any] = {
        "unit": PARAGRAPH if paragraphs else ITEM,
        "cluster_source": "context_sha256" if paragraphs else "item",
        "n_clusters": g, "mean_cluster_size": float(n / g) if g else None,
        "max_cluster_size": int(sizes.max()) if g else None,
        "mcnemar": clustered_mcnemar(control_right, treatment_right, codes),
    }

    perm_seq, *boot_seqs = seed_seq.spawn(1 + len(deltas))
    perm_ps = cluster_perm_ps(deltas, codes, r, np.random.default_rng(perm_seq)) if paragraphs else {}

    def one(args: tuple[str, np.random.SeedSequence]) -> dict[str, Any]:
        name, seq = args
        d = deltas[name]
        se, deff = design_effect(d, codes)
        if paragraphs:
            ci, p = cluster_bootstrap_ci(d, codes, b, np.random.default_rng(seq)), perm_ps[name]
        else:
            ci, p = item_metrics[name].get("ci_95"), item_metrics[name].get("perm_p_value")
        return {"ci_95": ci, "perm_p_value": p, "se": se, "design_effect": deff, "q_value": None}

    # each metric has its own bootstrap seed, so ``mapper`` may run them on threads in any order
    metrics = dict(zip(deltas, mapper(one, zip(deltas, boot_seqs, strict=True)), strict=True))
    out["metrics"] = metrics
    return out


def _clustered_tests(block: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    cl = block.get("clustered")
    if isinstance(cl, dict):
        yield cl["mcnemar"], "p_value"
        for metric in cl["metrics"].values():
            yield metric, "perm_p_value"
    for sub in all_subgroups(block):
        yield from _clustered_tests(sub)


def apply_clustered_fdr(results: dict[str, dict[str, dict[str, Any]]], enabled: bool) -> int:
    """Benjamini-Hochberg over the clustered p-values, a family of their own beside the item-level one
    (which stays as it is): fills each ``q_value``; returns the family size."""
    family = [(t, t[key]) for per_type in results.values() for block in per_type.values()
              for t, key in _clustered_tests(block) if t.get(key) is not None]
    if not enabled:
        return 0
    for (test, _), q in zip(family, bh_qvalues([p for _, p in family]), strict=True):
        test["q_value"] = float(q)
    return len(family)
