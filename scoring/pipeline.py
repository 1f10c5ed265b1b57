"""One trial's analysis: score -> stats -> costs -> report. The queue calls this when a trial ends.

Why one function: the queue, the stage CLIs and `producer run` must produce the same artifacts in the
same order; each stage writes atomically, so a crash leaves earlier artifacts intact.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from config.schema import EvalConfig
from scoring.costs import write_costs
from scoring.score_predictions import PER_ITEM_NAME, score_predictions
from scoring.stats import run_stats

PREDICTIONS_NAME = "predictions.csv"
SIGNIFICANCE_NAME = "significance.json"
COSTS_NAME = "costs.json"
MANIFEST_NAME = "trial_manifest.json"


def analyse_trial(results_dir: Path, prepared_dir: Path, cfg: EvalConfig, reports_dir: Path | None = None) -> dict[str, Any]:
    """Write per_item_scores.csv, significance.json, costs.json (and the report when ``reports_dir``)
    into ``results_dir`` from its predictions.csv; returns {stage: artifact path (str) or None}."""
    results_dir = Path(results_dir)
    pred = results_dir / PREDICTIONS_NAME
    if not pred.is_file():
        from producer.console import UserError

        raise UserError(f"predictions not found: {pred} (run the parse stage first)")
    out: dict[str, Any] = {}
    out["scored"] = str(score_predictions(pred, Path(prepared_dir), results_dir, cfg))
    out["stats"] = str(run_stats(results_dir / PER_ITEM_NAME, cfg.stats, results_dir / SIGNIFICANCE_NAME))
    out["costs"] = str(write_costs(pred, results_dir / COSTS_NAME, cfg, results_dir / MANIFEST_NAME))
    out["report"] = None
    if reports_dir is not None and importlib.util.find_spec("scoring.report") is not None:
        from scoring.report import write_report

        result = write_report(results_dir, Path(reports_dir), cfg)
        out["report"] = str(result) if result is not None else str(reports_dir)
    return out
