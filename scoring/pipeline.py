"""One trial's analysis: score -> stats -> costs -> report. The queue calls this when a trial ends.

Why one function: the queue, the stage CLIs and `producer run` must produce the same artifacts in the
same order; each stage writes atomically, so a crash leaves earlier artifacts intact. When the results
folder holds a trial_manifest.json, each stage's status (running, done, failed, skipped) and artifacts
are recorded in its ``stage_status`` (CONTRACT section 9).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from config.contract import (
    COSTS_JSON,
    PER_ITEM_SCORES_CSV,
    PREDICTIONS_CSV,
    SIGNIFICANCE_JSON,
    TRIAL_MANIFEST_JSON,
)
from config.schema import EvalConfig
from producer.host.console import UserError
from producer.runs.layout import TrialFolder
from producer.runs.manifests import update_stage
from scoring.costs import write_costs
from scoring.noise_floor import refresh as refresh_noise_floor
from scoring.report import write_report
from scoring.score_predictions import score_predictions
from scoring.stats import run_stats


def _stage(manifest: Path, stage: str, work: Callable[[], list[Path]], **extra: Any) -> list[Path]:
    """Run one stage, recording running/done/failed in the manifest when there is one; ``extra`` (filled
    by ``work``) is stored with the stage's entry."""
    record = manifest.is_file()
    if record:
        update_stage(manifest, stage, "running")
    try:
        artifacts = work()
    except Exception as exc:
        if record:
            update_stage(manifest, stage, "failed", error=" ".join(f"{type(exc).__name__}: {exc}".split()))
        raise
    if record:
        update_stage(manifest, stage, "done", artifacts, **extra)
    return artifacts


def analyse_trial(results_dir: Path, prepared_dir: Path, cfg: EvalConfig, reports_dir: Path | None = None,
                  rescore: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Write per_item_scores.csv, significance.json, costs.json (and the report when ``reports_dir``)
    into ``results_dir`` from its predictions.csv; returns {stage: artifact path (str) or None}.
    ``rescore`` (a comparison with an imported side scored by its own tool) rewrites per_item_scores.csv
    after our scoring, before the statistics."""
    results_dir = Path(results_dir)
    manifest = results_dir / TRIAL_MANIFEST_JSON
    pred = results_dir / PREDICTIONS_CSV
    if not pred.is_file():
        raise UserError(f"predictions not found: {pred} (run the parse stage first)")
    per_item = results_dir / PER_ITEM_SCORES_CSV
    sig = results_dir / SIGNIFICANCE_JSON
    costs = results_dir / COSTS_JSON
    def score() -> list[Path]:
        path = score_predictions(pred, Path(prepared_dir), results_dir, cfg)
        if rescore is not None:
            rescore(path)
        return [path]

    _stage(manifest, "scored", score)
    _stage(manifest, "stats", lambda: [run_stats(per_item, cfg.stats, sig, Path(prepared_dir))])
    _stage(manifest, "costs", lambda: [write_costs(pred, costs, cfg, manifest)])
    partner = refresh_noise_floor(results_dir, cfg)  # aa: true; the partner trial's report shows it too
    out: dict[str, Any] = {"scored": str(per_item), "stats": str(sig), "costs": str(costs), "report": None,
                           "headline": []}
    if reports_dir is None:
        if manifest.is_file():
            update_stage(manifest, "report", "skipped")
        return out

    headline: list[str] = []

    def report() -> list[Path]:
        written = write_report(results_dir, Path(reports_dir), cfg, prepared_dir=Path(prepared_dir))
        headline.extend(written["headline"])
        items = [written["items_html"]] if written["items_html"] is not None else []
        return [written["report_md"], written["report_html"], *items, *written["figures"]]

    # the headline sentences go into the manifest too: `producer run` prints them without pandas
    written = _stage(manifest, "report", report, headline=headline)
    out["report"] = str(next(p for p in written if p.name == "report.html"))
    out["headline"] = headline
    if partner is not None and TrialFolder.of_results(partner).report_html.is_file():
        write_report(partner, None, cfg, prepared_dir=Path(prepared_dir))
    return out
