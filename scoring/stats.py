"""Builder of significance.json (CONTRACT section 7, schema_version 2).

    python -m producer stats --per-item-csv P --config C --out-path O   (alias: python -m scoring.stats)

Pairs control and treatment per (temp, type) on item_key; everything is seeded from ``stats.seed`` and
the block's label, so a rerun gives the same file. See docs/statistics.md for what each number means.
"""

from __future__ import annotations

import copy
import os
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from config.atomic import write_json_atomic
from config.contract import CONDITIONS, item_key, parse_item_key
from config.schema import StatsConfig
from producer.inputs.prepare import load_prepared_items
from scoring.aggregate import ADDED_METRICS, ScoringInputError, read_per_item_csv
from scoring.clustered import apply_clustered_fdr, cluster_of_items, clustered_block
from scoring.fdr import apply_fdr
from scoring.stats_meta import meta_analysis, selective_risk_curve, tost
from scoring.stats_paired import HALDANE, mcnemar, metric_block
from scoring.verdicts import ALPHA, add_verdicts

SCHEMA_VERSION = 2
METRICS = {"open": ("em", "f1", "abstain_rate", "false_answer_rate", "unsupported_rate", "contains_answer"),
           "closed": ("em", "abstain_rate", "contains_answer")}
TOST_METRICS = ("em", "f1")
RIGHT_THRESHOLD = 0.5
WORKERS = max(1, min(2, os.cpu_count() or 1))


def metrics_of(frame: pd.DataFrame, type_: str) -> list[str]:
    """METRICS[type_] that ``frame`` (a paired frame) holds: an added metric is absent from older files."""
    return [m for m in METRICS[type_] if f"{m}_control" in frame.columns]


def is_right(em: Any) -> np.ndarray:
    """McNemar's verdict per item: right when its mean EM over the K samples is at least RIGHT_THRESHOLD.
    The one definition: the changed-items lists (scoring.changed_items) use it too, so they count b and c."""
    return np.asarray(em, dtype=float) >= RIGHT_THRESHOLD


def is_abstaining(abstain_rate: Any) -> np.ndarray:
    """An item abstains when its mean abstain rate is at least RIGHT_THRESHOLD (the same majority rule)."""
    return np.asarray(abstain_rate, dtype=float) >= RIGHT_THRESHOLD


def _seed(cfg: StatsConfig, *labels: str) -> np.random.SeedSequence:
    return np.random.SeedSequence([cfg.seed & 0xFFFFFFFF, zlib.crc32("|".join(labels).encode("utf-8"))])


def paired_frame(per_item: pd.DataFrame, temp: str, type_: str) -> pd.DataFrame:
    """Items with both conditions for (temp, type): columns <metric>_control, <metric>_treatment, dataset."""
    return split_pairs(per_item, temp, type_)[0]


def split_pairs(per_item: pd.DataFrame, temp: str, type_: str) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(paired_frame, the items left out because one condition has no score: {"control_only": [...],
    "treatment_only": [...]}, sorted item keys). Why keep the second: a failed request drops its item
    from the paired statistics, and significance.json must say which items that was."""
    sub = per_item[(per_item["temp"] == temp) & (per_item["type"] == type_)]
    dup = sub.duplicated(["item_key", "condition"])
    if dup.any():
        first = sub[dup].iloc[0]
        raise ScoringInputError(f"per-item scores repeat ({first['item_key']}, {first['condition']}, temp {temp}, "
                                f"{type_}): one row per (item_key, type, condition, temp) expected")
    # a metric added later (ADDED_METRICS) is left out of a file scored before it existed
    metrics = [m for m in METRICS[type_] if m not in ADDED_METRICS or (m in sub and sub[m].notna().any())]
    wide = sub.pivot(index="item_key", columns="condition", values=metrics)
    needed = [(m, c) for m in metrics for c in CONDITIONS]
    for col in needed:
        if col not in wide.columns:
            wide[col] = np.nan
    has_control, has_treatment = wide[("em", "control")].notna(), wide[("em", "treatment")].notna()
    unpaired = {"control_only": sorted(map(str, wide.index[has_control & ~has_treatment])),
                "treatment_only": sorted(map(str, wide.index[has_treatment & ~has_control]))}
    wide = wide.loc[has_control & has_treatment, needed]
    wide.columns = [f"{m}_{c}" for m, c in wide.columns]
    wide = wide.sort_index()
    wide["dataset"] = wide.index.map(lambda k: parse_item_key(k)[0])
    return wide, unpaired


def _unpaired_in(unpaired: dict[str, list[str]], dataset: str) -> dict[str, list[str]]:
    return {side: [k for k in keys if parse_item_key(k)[0] == dataset] for side, keys in unpaired.items()}


def block_stats(frame: pd.DataFrame, type_: str, cfg: StatsConfig, label: tuple[str, ...],
                clusters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The BLOCK of CONTRACT section 7 (without subgroups/meta) for paired items in ``frame``;
    ``clusters`` (item_key -> paragraph, scoring.clustered) for its ``clustered`` entry."""
    ctl_right = is_right(frame["em_control"].to_numpy(float))
    trt_right = is_right(frame["em_treatment"].to_numpy(float))
    def one(metric: str) -> dict[str, Any]:
        return metric_block(frame[f"{metric}_control"].to_numpy(float), frame[f"{metric}_treatment"].to_numpy(float),
                            cfg.bootstrap_samples, cfg.permutation_samples, _seed(cfg, *label, metric))

    names = metrics_of(frame, type_)
    deltas = {m: frame[f"{m}_treatment"].to_numpy(float) - frame[f"{m}_control"].to_numpy(float) for m in names}
    # numpy releases the GIL in the heavy parts; each metric has its own seed, so order does not matter
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        metrics = dict(zip(names, pool.map(one, names), strict=True))
        clustered = clustered_block(list(map(str, frame.index)), clusters, deltas, ctl_right, trt_right, metrics,
                                    cfg.bootstrap_samples, cfg.permutation_samples, _seed(cfg, *label, "clustered"),
                                    pool.map)
    selective = {cond: selective_risk_curve(frame[f"abstain_rate_{cond}"].to_numpy(float),
                                            frame[f"em_{cond}"].to_numpy(float), cfg.risk_thresholds)
                 for cond in CONDITIONS}
    tost_block = {}
    for metric in TOST_METRICS:
        if metric in METRICS[type_] and metric in cfg.tost_margins:
            d = frame[f"{metric}_treatment"].to_numpy(float) - frame[f"{metric}_control"].to_numpy(float)
            tost_block[metric] = tost(d, float(cfg.tost_margins[metric]), cfg.tost_alpha)
    return {"n_items": int(len(frame)), "mcnemar": mcnemar(ctl_right, trt_right), "metrics": metrics,
            "selective_risk": selective, "tost": tost_block, "clustered": clustered}


def _meta(subgroups: dict[str, dict[str, Any]], frames: dict[str, pd.DataFrame], type_: str) -> dict[str, Any]:
    out = {}
    for metric in metrics_of(next(iter(frames.values())), type_) if frames else ():
        effects = {}
        for name, frame in frames.items():
            d = (frame[f"{metric}_treatment"] - frame[f"{metric}_control"]).to_numpy(float)
            d = d[np.isfinite(d)]
            var = float(np.var(d, ddof=1) / len(d)) if len(d) > 1 else None
            effects[name] = (float(d.mean()) if len(d) else None, var, len(d))
        out[metric] = meta_analysis(effects)
    return out


def groups_of_items(items: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """item_key -> {"meta.<key>": label} from prepared items that carry a ``meta`` object."""
    return {item_key(str(it["dataset"]), str(it["id"])): {f"meta.{k}": str(v) for k, v in it["meta"].items()}
            for it in items if isinstance(it.get("meta"), dict)}


def _label_groups(frame: pd.DataFrame, type_: str, cfg: StatsConfig, label: tuple[str, ...],
                  groups: Mapping[str, Mapping[str, str]] | None) -> dict[str, dict[str, Any]]:
    """{"meta.<field>": {label: BLOCK}} for each ``cfg.subgroups`` field whose paired items carry at least
    two labels (one label would repeat the block); items without the label are in no group."""
    out: dict[str, dict[str, Any]] = {}
    for field in cfg.subgroups:
        labels = pd.Series([(groups or {}).get(str(k), {}).get(field) for k in frame.index], index=frame.index)
        values = sorted({v for v in labels if v is not None})
        if len(values) >= 2:
            out[field] = {v: block_stats(frame[labels == v], type_, cfg, (*label, field, v)) for v in values}
    return out


def build_significance(per_item: pd.DataFrame, cfg: StatsConfig, clusters: Mapping[str, str] | None = None,
                       groups: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """significance.json as a dict (strict-JSON-safe after config.atomic.to_strict_json); ``clusters``:
    item_key -> cluster id (scoring.clustered.cluster_of_items), None: every item its own cluster;
    ``groups``: item_key -> {"meta.<field>": label} for ``cfg.subgroups`` (``groups_of_items``)."""
    temps = sorted(per_item["temp"].astype(str).unique(), key=float)
    results: dict[str, dict[str, Any]] = {}
    no_pairs: dict[str, dict[str, Any]] = {}  # (temp, type) with scores but not one paired item
    duplicates: list[tuple[dict[str, Any], str]] = []
    for temp in temps:
        results[temp] = {}
        for type_ in ("open", "closed"):
            frame, unpaired = split_pairs(per_item, temp, type_)
            if frame.empty:
                if any(unpaired.values()):
                    no_pairs.setdefault(temp, {})[type_] = {"unpaired": unpaired}
                continue
            block = block_stats(frame, type_, cfg, (temp, type_), clusters)
            block["unpaired"] = unpaired
            frames = {str(name): f for name, f in frame.groupby("dataset", sort=True)}
            subgroups: dict[str, Any] = {}
            for name, sub in frames.items():
                if len(frames) == 1:
                    duplicates.append((block, name))  # identical items: filled after FDR
                    continue
                subgroups[name] = block_stats(sub, type_, cfg, (temp, type_, name), clusters)
                subgroups[name]["unpaired"] = _unpaired_in(unpaired, name)
            block["subgroups"] = {"dataset": subgroups, **_label_groups(frame, type_, cfg, (temp, type_), groups)}
            block["meta"] = _meta(subgroups, frames, type_)
            results[temp][type_] = block
    n_tests = apply_fdr(results, cfg.enable_fdr)
    n_clustered_tests = apply_clustered_fdr(results, cfg.enable_fdr)
    add_verdicts(results, ALPHA)  # after FDR; subgroups copied below carry theirs
    for block, name in duplicates:
        block["subgroups"]["dataset"][name] = {k: copy.deepcopy(v) for k, v in block.items()
                                               if k not in ("subgroups", "meta")}
        block["subgroups"]["dataset"][name]["unpaired"] = _unpaired_in(block["unpaired"], name)
    stats_config = cfg.model_dump(mode="json")
    stats_config.update({
        "right_when_mean_em_at_least": RIGHT_THRESHOLD,
        "bootstrap": "paired percentile bootstrap over items (2.5 and 97.5 percentiles)",
        "permutation": "two-sided sign-flip of paired deltas, p = (1 + #{|T*| >= |T|}) / (R + 1)",
        "odds_ratio": f"b / c, Wald CI on log OR; Haldane +{HALDANE} to b and c when either is 0",
        "wilcoxon": "scipy.stats.wilcoxon, zero_method='wilcox', two-sided; all-zero deltas: W 0, p 1.0",
        "fdr": {"method": "fdr_bh", "enabled": cfg.enable_fdr, "n_tests": n_tests,
                "family": "every McNemar p_exact and Wilcoxon p_value in this file, dataset and meta subgroups "
                          "included (a subgroup identical to its type is not counted twice)"},
        "clustered": {"clusters": "open-book: paragraph (sha256 of the context text); closed-book: the item"
                                  if clusters else "none given: every item its own cluster",
                      "bootstrap": "percentile bootstrap resampling paragraphs with replacement (their items "
                                   "and samples with them)",
                      "permutation": "two-sided sign-flip of each paragraph's summed delta",
                      "design_effect": "clustered variance of the mean delta / item-level variance",
                      "mcnemar": "Durkalski et al. 2003, Stat Med 22:2417",
                      "fdr": {"method": "fdr_bh", "enabled": cfg.enable_fdr, "n_tests": n_clustered_tests,
                              "family": "every clustered McNemar p_value and permutation p in this file"}},
    })
    return {"schema_version": SCHEMA_VERSION, "temps": temps, "stats_config": stats_config, "results": results,
            "no_paired_items": no_pairs}


def run_stats(per_item_csv: Path, cfg: StatsConfig, out_path: Path, prepared_dir: Path | None = None) -> Path:
    """significance.json from per_item_scores.csv; with ``prepared_dir`` (the items' contexts) the
    ``clustered`` figures cluster open-book items by paragraph."""
    per_item = read_per_item_csv(Path(per_item_csv))
    clusters = groups = None
    if prepared_dir is not None:
        items = load_prepared_items(Path(prepared_dir))
        clusters = cluster_of_items(items)
        groups = groups_of_items(items) if cfg.subgroups else None
    return write_json_atomic(Path(out_path), build_significance(per_item, cfg, clusters, groups))


if __name__ == "__main__":  # alias: the command lives in producer/cli/cmd_stats.py
    from producer.cli import run_alias

    run_alias("stats", "python -m scoring.stats")
