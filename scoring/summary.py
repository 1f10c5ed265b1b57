"""Multi-trial summary for a run with several trials (a sweep over prompt sets, models or sampling).

Usage: ``python -m producer summary --run-dir experiments/run_<ID>`` (alias ``python -m scoring.summary``)
writes ``summary.md`` and a self-contained ``summary.html`` in the run folder. Each trial's treatment effect (treatment - control
on that trial's paired items) is compared side by side per condition, temperature and metric; control
and treatment are never pooled across trials. Benjamini-Hochberg FDR is applied again across every
test of every trial (q across trials), since a sweep multiplies the number of tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.atomic import write_text_atomic
from config.contract import LOCAL_COSTS_JSON, PER_ITEM_SCORES_CSV, SIGNIFICANCE_JSON, TRIAL_MANIFEST_JSON
from config.wording import plural
from producer.runs.layout import RunFolder
from scoring.fdr import bh_qvalues
from scoring.report_data import is_dry_run, load_per_item, paired_means, read_result_json
from scoring.report_html import to_html
from scoring.report_md import to_markdown
from scoring.report_sig import EffectRow, all_tests, effect_rows
from scoring.report_text import (
    METRIC_LABELS,
    METRIC_PHRASES,
    Block,
    Figure,
    Heading,
    Para,
    Table,
    dry_run_banner,
    fmt_ci,
    fmt_num,
    fmt_p,
    fmt_pct,
    fmt_pts,
    row_means,
    sig_datasets,
    type_phrase,
)
from scoring.verdicts import ALPHA


@dataclass
class TrialResult:
    slug: str
    settings: str
    rows: list[EffectRow]
    means: Any  # DataFrame of paired means per condition, or None
    tests: list[tuple[tuple[str, str, str | None, str], float | None]]  # the trial's whole BH family
    dry_run: bool = False  # answers from a dry-run engine, not a model
    datasets: dict[str, list[str]] | None = None  # {type: the datasets that ran} (report_text.sig_datasets)


def find_trials(run_dir: Path) -> list[Path]:
    """Every ``<slug>/results`` folder of the run that holds a significance.json, in name order."""
    return [t.results_dir for t in RunFolder(Path(run_dir)).trials_with(SIGNIFICANCE_JSON)]


def _trial_settings(manifest: dict[str, Any] | None) -> str:
    if not manifest:
        return "not available"
    trial = manifest.get("trial") if isinstance(manifest.get("trial"), dict) else {}
    parts = []
    for key in ("model", "prompt_set", "top_p", "top_k", "max_new_tokens"):
        value = trial.get(key, manifest.get(key))
        if value is not None:
            parts.append(f"{key}: {value}")
    return ", ".join(parts) or "not available"


def load_trials(run_dir: Path) -> tuple[list[TrialResult], list[str]]:
    trials, problems = [], []
    for results in find_trials(run_dir):
        sig = read_result_json(results / SIGNIFICANCE_JSON, problems)
        if not sig:
            continue
        per_item = load_per_item(results / PER_ITEM_SCORES_CSV, problems)
        means = paired_means(per_item)[0] if per_item is not None and not per_item.empty else None
        manifest = read_result_json(results / TRIAL_MANIFEST_JSON, problems)
        dry = is_dry_run(manifest, read_result_json(results / LOCAL_COSTS_JSON, problems))
        trials.append(TrialResult(results.parent.name, _trial_settings(manifest),
                                  effect_rows(sig, with_subgroups=False), means, all_tests(sig), dry,
                                  sig_datasets(sig)))
    return trials, problems


def across_trial_q(trials: list[TrialResult]) -> dict[tuple[str, int], float | None]:
    """BH q-value of each (trial slug, row index), the family being every test of every trial
    (metrics, McNemar and dataset subgroups, as in each trial's own FDR)."""
    family = [((t.slug, key), p) for t in trials for key, p in t.tests if p is not None]
    qs = dict(zip([k for k, _ in family], (float(q) for q in bh_qvalues([p for _, p in family])), strict=True))
    return {(t.slug, i): qs.get((t.slug, (r.temp, r.type, r.dataset, r.metric)))
            for t in trials for i, r in enumerate(t.rows)}


def build_summary(run_dir: Path, fig_dir: Path) -> list[Block]:
    """The summary's blocks: headline counts, one table and one forest plot per (type, metric)."""
    from scoring import figures  # lazy: matplotlib only when there is something to draw
    run_dir = Path(run_dir)
    trials, problems = load_trials(run_dir)
    title = f"Excellence Experiment summary: {run_dir.name}"
    doc: list[Block] = [Heading(title, 1)]
    if not trials:
        return doc + [Para("No trial of this run has a significance.json yet: nothing to compare.", "headline")]
    dry = [t.slug for t in trials if t.dry_run]
    if dry:
        which = "every trial of this run" if len(dry) == len(trials) else "trials " + ", ".join(dry)
        doc.append(dry_run_banner(f"The answers of {which} came from the dry-run engine, not a model: the "
                                  "numbers test the pipeline, not the prompts."))
    first = len(doc)  # the first counting sentence is the headline, whatever comes before it
    q_run = across_trial_q(trials)
    combos: list[tuple[str, str]] = []
    for t in trials:
        for r in t.rows:
            if (r.type, r.metric) not in combos:
                combos.append((r.type, r.metric))
    for type_, metric in combos:
        hits = [(t, i, r) for t in trials for i, r in enumerate(t.rows) if r.type == type_ and r.metric == metric]
        if metric == "false_answer_rate" or (metric == "em" and type_ == "closed"):
            lower = sum(1 for t, i, r in hits if r.delta is not None and r.delta < 0 and (q_run[(t.slug, i)] or 1) < ALPHA)
            higher = sum(1 for t, i, r in hits if r.delta is not None and r.delta > 0 and (q_run[(t.slug, i)] or 1) < ALPHA)
            what = (f"treatment lowered it significantly in {lower} and raised it in {higher}" if lower or higher
                    else "treatment made no significant change in any")
            # every dataset that ran, a type's lone dataset included (its subgroup is no separate test)
            covered = [d for t in trials for d in (t.datasets or {}).get(type_, [])]
            doc.append(Para(f"{METRIC_PHRASES[metric].capitalize()} on {type_phrase(type_, covered)}: {what} of {len(hits)} "
                            f"trial x temperature comparisons (q across trials < {ALPHA}).", "headline" if len(doc) == first else "subhead"))
    doc.append(Para(f"{plural(len(trials), 'trial')}. Each delta is treatment - control within one trial (paired items); "
                    "control and treatment are never pooled across trials. 'q (trial)' is the trial's own BH q-value; "
                    "'q (run)' applies Benjamini-Hochberg again across every test of every trial.", "note"))
    doc.append(Heading("Trials"))
    doc.append(Table(["trial", "settings"], [[t.slug, t.settings] for t in trials]))
    for type_, metric in combos:
        label = f"{METRIC_LABELS.get(metric, metric)}, {type_}-book"
        doc.append(Heading(label))
        body, f_labels, deltas, lows, highs, sigs = [], [], [], [], [], []
        for t in trials:
            for i, r in enumerate(t.rows):
                if r.type != type_ or r.metric != metric:
                    continue
                control, treatment = row_means(r, t.means)
                q = q_run[(t.slug, i)]
                significant = q is not None and q < ALPHA
                body.append([t.slug, r.temp, fmt_pct(control), fmt_pct(treatment),
                             fmt_pts(r.delta) + (" *" if significant else ""), fmt_ci(r), fmt_p(r.p_value),
                             fmt_p(r.q_value), fmt_p(q), fmt_num(r.n_items)])
                if r.delta is not None:
                    f_labels.append(f"{t.slug} @ {r.temp}")
                    deltas.append(100 * r.delta)
                    lows.append(None if r.ci_low is None else 100 * r.ci_low)
                    highs.append(None if r.ci_high is None else 100 * r.ci_high)
                    sigs.append(significant)
        doc.append(Table(["trial", "temp", "control", "treatment", "delta (pts)", "95% CI (pts)", "p (Wilcoxon)",
                          "q (trial)", "q (run)", "paired items"], body,
                         caption="Means over each trial's paired items; * = q (run) < 0.05."))
        path = figures.forest(f_labels, deltas, lows, highs, sigs, f"{label}: treatment effect per trial (red: q (run) < 0.05)",
                              fig_dir / f"summary_{type_}_{metric}.png")
        if path:
            doc.append(Figure(path, f"{label}: paired delta per trial and temperature."))
    for problem in problems:
        doc.append(Para(f"Unreadable artifact: {problem}.", "warning"))
    return doc


def write_run_summary(run_dir: Path) -> Path:
    """Write ``summary.md``, ``summary.html`` and ``summary_figures/`` in ``run_dir``; returns the HTML path."""
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    fig_dir = folder.summary_figures
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("summary_*.png"):
        old.unlink(missing_ok=True)
    doc = build_summary(run_dir, fig_dir)
    title = doc[0].text if isinstance(doc[0], Heading) else "summary"
    write_text_atomic(folder.summary_md, to_markdown(doc, run_dir))
    return write_text_atomic(folder.summary_html, to_html(doc, title))


if __name__ == "__main__":  # alias: the command lives in producer/cli/cmd_summary.py
    from producer.cli import run_alias

    run_alias("summary", "python -m scoring.summary")
