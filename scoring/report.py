"""One trial's report: ``report.md``, a self-contained ``report.html``, ``items.html`` (every paired item,
filterable) and PNG figures.

Usage: ``python -m producer report --results-dir experiments/run_X/<slug>/results`` (alias
``python -m scoring.report``; reports go to the sibling ``reports/`` folder, CONTRACT section 9).
Missing artifacts show as "not available"; the report never fails because a run was incomplete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config.atomic import write_text_atomic
from producer.runs.layout import REPORT_HTML, REPORT_MD, TrialFolder

FIGURE_PATTERNS = ("forest_*.png", "risk_coverage_*.png", "telemetry.png")


def default_reports_dir(results_dir: Path) -> Path:
    """``<slug>/results`` -> ``<slug>/reports``."""
    return TrialFolder.of_results(results_dir).reports_dir


def _manifest_from_config(cfg: Any) -> dict[str, Any]:
    """Settings from the config when the trial manifest is missing (marked as such)."""
    return {"source": "config (trial_manifest.json missing)", "backend": cfg.backend,
            "model": cfg.local_model if cfg.backend == "local" else cfg.model_id,
            "local_engine": cfg.local_engine, "temps": list(cfg.temps),
            "samples_per_item": dict(cfg.samples_per_item), "top_p": cfg.top_p, "top_k": cfg.top_k,
            "seed": cfg.seed}


def _paired(results_dir: Path, prepared_dir: Path | None) -> tuple[list[Any] | None, str | None]:
    """Every paired item (scoring.changed_items), or None and why; a report never fails for want of it."""
    from scoring.aggregate import ScoringInputError  # lazy: pandas, only when a report is written
    from scoring.changed_items import paired_items  # lazy: pandas, only when a report is written

    try:
        return paired_items(results_dir, prepared_dir), None
    except ScoringInputError as exc:
        return None, str(exc)


def write_report(results_dir: Path, reports_dir: Path | None = None, cfg: Any = None, *,
                 figures: bool = True, prepared_dir: Path | None = None) -> dict[str, Any]:
    """Write the report for one trial; returns the paths written and the first-screen sentences.

    ``figures=False`` skips the PNGs (tables and text only; quicker when only the numbers matter).
    ``prepared_dir``: the trial's prepared items, for the questions and gold answers of the changed items
    (default: the run's own ``prepared/`` snapshot).
    """
    # imported here so the CLI answers --help and bad paths without loading pandas and matplotlib
    from scoring.items_html import ITEMS_HTML, write_items_html  # lazy: pandas, only for a report
    from scoring.report_data import load_report_data  # lazy: pandas/matplotlib, only when a report is written
    from scoring.report_html import to_html  # lazy: pandas/matplotlib, only when a report is written
    from scoring.report_md import to_markdown  # lazy: pandas/matplotlib, only when a report is written
    from scoring.report_sections import build_document  # lazy: matplotlib/scipy, only for a report
    from scoring.report_text import Figure, Para  # lazy: pandas/matplotlib, only when a report is written

    results_dir = Path(results_dir)
    reports_dir = Path(reports_dir) if reports_dir is not None else default_reports_dir(results_dir)
    fig_dir = reports_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for pattern in FIGURE_PATTERNS:  # no stale figure from an earlier render
        for old in fig_dir.glob(pattern):
            old.unlink(missing_ok=True)
    data = load_report_data(results_dir)
    if data.manifest is None and cfg is not None:
        data.manifest = _manifest_from_config(cfg)
    slug = results_dir.parent.name or results_dir.name
    title = f"Excellence Experiment report: {slug}"
    data.paired_items, data.paired_problem = _paired(results_dir, prepared_dir)
    if data.paired_items is None:
        (reports_dir / ITEMS_HTML).unlink(missing_ok=True)  # no stale page beside a report that lacks it
        items_path = None
    else:
        items_path = write_items_html(reports_dir, data.paired_items, f"Paired items: {slug}")
    doc = build_document(data, fig_dir if figures else None, title)
    md_path = write_text_atomic(reports_dir / REPORT_MD, to_markdown(doc, reports_dir))
    html_path = write_text_atomic(reports_dir / REPORT_HTML, to_html(doc, title))
    return {"report_md": md_path, "report_html": html_path, "items_html": items_path,
            "figures": [b.path for b in doc if isinstance(b, Figure)],
            "headline": [b.text for b in doc if isinstance(b, Para) and b.kind in ("headline", "subhead")]}


if __name__ == "__main__":  # alias: the command lives in producer/cli/cmd_report.py
    from producer.cli import run_alias

    run_alias("report", "python -m scoring.report")
