"""The noise floor (A/A): how much answers and scores move when nothing changed (docs/statistics.md,
"Noise floor (A/A)").

Why: batching, seeds, caches and engines change answers on their own (n_parallel 4 against 1 left only
79 % of the demo's answers identical at T = 0). An effect is believable only when it is larger than
what control against itself gives. With ``aa: true`` every trial has an A/A twin (``<slug>-aa``,
``producer.runs.trials.aa_trial``) whose "treatment" arm asks the control prompt again. This module
compares the two trials and writes ``noise_floor.json`` (CONTRACT section 9) into both results
folders: per temperature and type, the flip rate (share of paired answers whose text differs) of the
A/A pair and of the real pair, each with its Wilson interval, and per metric the A/A delta with its
95 % interval next to the treatment's delta, and whether the effect lies within the noise.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from config.atomic import write_json_atomic
from config.contract import NOISE_FLOOR_JSON, PER_ITEM_SCORES_CSV, PREDICTIONS_CSV
from producer.runs.layout import TrialFolder
from producer.runs.trials import aa_pairs
from scoring.report_sig import METRIC_ORDER

log = logging.getLogger("scoring")

CONFIDENCE = 0.95
SCHEMA_VERSION = 1
METRICS = METRIC_ORDER  # every per_item_scores.csv metric, in the report's order (contains_answer included)
PAIR_COLUMNS = ["dataset", "item_id", "temp", "sample_index", "type"]  # a custom_id without its condition


def wilson_interval(flips: int, n: int, confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """Wilson score interval of a proportion (scipy's ``binomtest``); (None, None) without pairs."""
    if n <= 0:
        return None, None
    from scipy.stats import binomtest  # lazy: scipy, only when a noise floor is computed

    ci = binomtest(int(flips), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def flip_rate(flips: int, n: int, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """``{pairs, flips, rate, ci_low, ci_high, method}``: share of pairs whose two answers differ."""
    low, high = wilson_interval(flips, n, confidence)
    return {"pairs": int(n), "flips": int(flips), "rate": (flips / n) if n else None,
            "ci_low": low, "ci_high": high, "method": "wilson"}


def mean_interval(diffs: list[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean of paired differences with its t interval (``{n, delta, ci_low, ci_high}``). Differences that
    are all equal give a zero-width interval; fewer than two give none."""
    n = len(diffs)
    if n == 0:
        return {"n": 0, "delta": None, "ci_low": None, "ci_high": None}
    mean = sum(diffs) / n
    if n < 2:
        return {"n": n, "delta": mean, "ci_low": None, "ci_high": None}
    from scipy.stats import t  # lazy: scipy, only when a noise floor is computed

    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "delta": mean, "ci_low": mean - half, "ci_high": mean + half}


def noise_band(aa: dict[str, Any]) -> float | None:
    """The largest move the A/A interval allows: max(|low|, |high|) of the A/A delta's interval."""
    if aa.get("ci_low") is None or aa.get("ci_high") is None:
        return None
    return max(abs(aa["ci_low"]), abs(aa["ci_high"]))


def within_noise(effect_delta: float | None, aa: dict[str, Any]) -> bool | None:
    """The rule (docs/statistics.md): an effect no larger than the A/A interval's far end is within the noise."""
    band = noise_band(aa)
    if effect_delta is None or band is None:
        return None
    return abs(effect_delta) <= band + 1e-12


def flips_within_noise(effect: dict[str, Any], aa: dict[str, Any]) -> bool | None:
    """The treatment's flip rate not above the A/A flip rate's upper bound: its changes look like noise."""
    if effect.get("rate") is None or aa.get("ci_high") is None:
        return None
    return effect["rate"] <= aa["ci_high"] + 1e-12


def flips_by_group(predictions_csv: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """{(temp, type): (pairs, flips)}: answers paired by item, temperature and sample across the two
    conditions; a flip is a response_text that differs (byte for byte)."""
    import pandas as pd  # lazy: pandas, only when a noise floor is computed

    df = pd.read_csv(predictions_csv, dtype=str, keep_default_na=False, encoding="utf-8")
    control = df[df["condition"] == "control"].drop_duplicates(PAIR_COLUMNS)
    treatment = df[df["condition"] == "treatment"].drop_duplicates(PAIR_COLUMNS)
    both = control.merge(treatment, on=PAIR_COLUMNS, suffixes=("_c", "_t"))
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for (temp, type_), g in both.groupby(["temp", "type"], sort=True):
        out[(str(temp), str(type_))] = (len(g), int((g["response_text_c"] != g["response_text_t"]).sum()))
    return out


def deltas_by_group(per_item_csv: Path) -> dict[tuple[str, str], dict[str, list[float]]]:
    """{(temp, type): {metric: per-item treatment - control}} over the items scored in both conditions."""
    from scoring.report_data import load_per_item  # lazy: pandas; the one reader of per_item_scores.csv

    problems: list[str] = []
    df = load_per_item(per_item_csv, problems)
    if df is None:
        raise ValueError(problems[0] if problems else f"{per_item_csv} not found")
    out: dict[tuple[str, str], dict[str, list[float]]] = {}
    for (temp, type_), g in df.groupby(["temp", "type"], sort=True):
        wide = g.pivot_table(index="item_key", columns="condition", values=[m for m in METRICS if m in g.columns],
                             aggfunc="mean")
        metrics: dict[str, list[float]] = {}
        for metric in METRICS:
            if (metric, "control") in wide.columns and (metric, "treatment") in wide.columns:
                diff = (wide[(metric, "treatment")] - wide[(metric, "control")]).dropna()
                metrics[metric] = [float(x) for x in diff]
        out[(str(temp), str(type_))] = metrics
    return out


def compare(measured: Path, aa: Path, confidence: float = CONFIDENCE) -> list[dict[str, Any]]:
    """One row per temperature and type of the A/A trial: both flip rates, and per metric the effect's
    delta beside the A/A delta and its interval, with the noise verdicts."""
    flips_eff, flips_aa = flips_by_group(measured / PREDICTIONS_CSV), flips_by_group(aa / PREDICTIONS_CSV)
    deltas_eff, deltas_aa = deltas_by_group(measured / PER_ITEM_SCORES_CSV), deltas_by_group(aa / PER_ITEM_SCORES_CSV)
    rows = []
    for key in sorted(set(flips_aa) | set(deltas_aa)):
        temp, type_ = key
        aa_flip = flip_rate(*_flips(flips_aa.get(key)), confidence)
        eff_flip = flip_rate(*_flips(flips_eff.get(key)), confidence)
        metrics = {}
        for metric, diffs in deltas_aa.get(key, {}).items():
            aa_delta = mean_interval(diffs, confidence)
            eff = mean_interval(deltas_eff.get(key, {}).get(metric, []), confidence)
            metrics[metric] = {"aa": aa_delta, "effect": eff, "noise_band": noise_band(aa_delta),
                               "within_noise": within_noise(eff["delta"], aa_delta)}
        rows.append({"temp": temp, "type": type_, "aa_flips": aa_flip, "effect_flips": eff_flip,
                     "flips_within_noise": flips_within_noise(eff_flip, aa_flip), "metrics": metrics})
    return rows


def _flips(found: tuple[int, int] | None) -> tuple[int, int]:
    pairs, flips = found or (0, 0)
    return flips, pairs


def write_noise_floor(measured: Path, aa: Path, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Compute and write ``noise_floor.json`` into both results folders (atomically); returns it."""
    measured, aa = Path(measured), Path(aa)
    data = {"schema_version": SCHEMA_VERSION, "trial": measured.parent.name, "aa_trial": aa.parent.name,
            "confidence": confidence, "flip": "response_text differs between the two arms of a pair",
            "rows": compare(measured, aa, confidence)}
    for folder in (measured, aa):
        write_json_atomic(folder / NOISE_FLOOR_JSON, data)
    return data


def partner_folders(results_dir: Path, cfg: Any) -> tuple[Path, Path] | None:
    """(measured trial's results, its A/A trial's results) when ``results_dir`` belongs to such a pair."""
    if cfg is None or not getattr(cfg, "aa", False):
        return None
    trial = TrialFolder.of_results(results_dir)
    slug = trial.path.name
    pairs = aa_pairs(cfg)
    measured_of = {v: k for k, v in pairs.items()}
    run = trial.path.parent
    if slug in pairs:
        return TrialFolder(run / pairs[slug]).results_dir, Path(results_dir)
    if slug in measured_of:
        return Path(results_dir), TrialFolder(run / measured_of[slug]).results_dir
    return None


def refresh(results_dir: Path, cfg: Any) -> Path | None:
    """After a trial's stats: when it and its partner are both scored, (re)write their noise floor;
    returns the partner's results folder (whose report may need the new section), else None."""
    pair = partner_folders(results_dir, cfg)
    if pair is None:
        return None
    measured, aa = pair
    needed = [folder / name for folder in pair for name in (PREDICTIONS_CSV, PER_ITEM_SCORES_CSV)]
    if not all(p.is_file() for p in needed):
        return None  # the other trial is not analysed yet: its own analysis writes the file
    try:
        write_noise_floor(measured, aa)
    except (ValueError, KeyError) as exc:  # unreadable inputs: the trial's own analysis and report go on
        log.warning("noise floor of %s not computed: %s", measured.parent.name, " ".join(str(exc).split()))
        return None
    return aa if Path(results_dir) == measured else measured
