"""``python -m producer compare A B``: the paired statistics and items view between any two answer sets.

Why: "does the effect hold on another model, engine, quantisation, or last month's prompt?" is a question
across runs. Each side is ``RUN_ID[/TRIAL][:CONDITION]``: a run with one trial needs no trial; a side
without a condition takes the other side's; neither side with one compares control with control and
treatment with treatment. A is reported as "control", B as "treatment" (scoring/compare.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from config.contract import CONDITIONS, PREDICTIONS_CSV
from config.wording import plural
from producer.cli.command import command
from producer.host.console import UserError, make_console_safe, one_line_errors
from producer.runs.layout import ComparisonFolder, RunFolder, RunLayout, TrialFolder, validate_run_id

SELECTOR = re.compile(r"^(?P<run>[^/:]+)(?:/(?P<trial>[^:]+))?(?::(?P<cond>[^/:]+))?$")


def parse_selector(text: str) -> tuple[str, str | None, str | None]:
    """``RUN_ID[/TRIAL][:CONDITION]`` -> (run id, trial or None, condition or None); one line if malformed."""
    match = SELECTOR.match(text.strip())
    if not match:
        raise UserError(f"cannot read {text!r}: write RUN_ID[/TRIAL][:CONDITION], e.g. 20261205-1200-ab/"
                        "smollm2-default:treatment")
    run, trial, cond = match.group("run"), match.group("trial"), match.group("cond")
    validate_run_id(run)
    if cond is not None and cond not in CONDITIONS:
        raise UserError(f"{text}: the condition is {' or '.join(CONDITIONS)}, not {cond!r}")
    return run, trial, cond


def _run_folder(run_id: str) -> RunFolder:
    """The run's folder: from the ledger that holds it, else ``experiments/run_<id>`` here."""
    from producer.ledger.locate import find_run_queue

    if find_run_queue(run_id) is not None:
        from producer.cli.cmd_status import _open_readonly
        from producer.ledger.queries import get_run

        run = get_run(_open_readonly(), run_id)
        if run is not None:
            return RunLayout(Path(run["experiments_dir"]), run_id).folder
    here = RunLayout(Path("experiments").resolve(), run_id).folder
    if here.path.is_dir():
        return here
    raise UserError(f"no run {run_id!r}: not in the ledger and no folder experiments/run_{run_id} here")


def _trial(text: str, folder: RunFolder, trial: str | None, partial: bool) -> TrialFolder:
    from producer.runs.manifests import read_trial_manifest

    have = [t.path.name for t in folder.trials_with(PREDICTIONS_CSV)]
    if trial is None:
        if len(have) != 1:
            raise UserError(f"{text}: run has {len(have)} trials with answers ({', '.join(have) or 'none'}): "
                            "pick one with RUN_ID/TRIAL")
        trial = have[0]
    if trial not in have:
        raise UserError(f"{text}: no trial {trial!r} with answers (its trials: {', '.join(have) or 'none'})")
    found = folder.trial(trial)
    parsed = read_trial_manifest(found.manifest).stage_status.get("parsed")
    if not partial and (parsed is None or parsed.status != "done"):
        raise UserError(f"{text}: trial {trial} is not complete (still running, or stopped): finish it, or "
                        "compare the items both sides have so far with --partial")
    return found


@command()
@click.argument("side_a", metavar="A")
@click.argument("side_b", metavar="B")
@click.option("--partial", is_flag=True, help="Compare the items both sides have even if a run is not complete.")
@click.option("--allow-different-inputs", is_flag=True,
              help="Compare even when the two sides asked different questions of an item.")
@click.option("--no-report", is_flag=True, help="Statistics only (no report.html / items.html).")
@one_line_errors
def compare(side_a: str, side_b: str, partial: bool, allow_different_inputs: bool, no_report: bool) -> None:
    """Paired statistics, report and changed items between A and B (each RUN_ID[/TRIAL][:CONDITION])."""
    from config.schema import load_config
    from scoring.compare import Side, merge_prepared, plan_pairs, write_comparison

    make_console_safe()
    (run_a, trial_a, cond_a), (run_b, trial_b, cond_b) = parse_selector(side_a), parse_selector(side_b)
    folder_a, folder_b = _run_folder(run_a), _run_folder(run_b)
    tri_a, tri_b = _trial(side_a, folder_a, trial_a, partial), _trial(side_b, folder_b, trial_b, partial)
    from producer.imports.record import IMPORTED_CONDITION, imported_record

    cond_a = cond_a or (IMPORTED_CONDITION if imported_record(folder_a) else None)  # an import has one answer set
    cond_b = cond_b or (IMPORTED_CONDITION if imported_record(folder_b) else None)
    cond_a, cond_b = cond_a or cond_b, cond_b or cond_a
    pairs = [(cond_a, cond_b)] if cond_a else [(c, c) for c in CONDITIONS]
    if not folder_a.effective_config.is_file():
        raise UserError(f"{side_a}: no effective_config.yaml in {folder_a.path}")
    cfg = load_config(folder_a.effective_config, check_files=False)  # A's statistics settings apply
    sides = [(Side(f"{side_a.split(':')[0]}:{ca}", tri_a.results_dir, ca),
              Side(f"{side_b.split(':')[0]}:{cb}", tri_b.results_dir, cb)) for ca, cb in pairs]
    for a, b in sides:  # every refusal before anything is written
        plan_pairs(a, b, allow_different_inputs)
    out = ComparisonFolder.of(folder_a.path.parent, side_a, side_b)
    prepared = merge_prepared(folder_a.prepared_dir, folder_b.prepared_dir, out.prepared_dir)
    for a, b in sides:
        pair = out.pair(a.condition if a.condition == b.condition else f"{a.condition}_vs_{b.condition}")
        summary = write_comparison(a, b, pair, cfg, prepared, allow_different_inputs, report=not no_report)
        click.echo(f"{a.label} (as control) vs {b.label} (as treatment): {plural(summary['paired'], 'paired answer')}, "
                   f"{len(summary['only_a'])} only in A, {len(summary['only_b'])} only in B")
        for role, scorer in summary["scorers"].items():
            if "scoring/rules.py" not in scorer:
                click.echo(f"  {role} scored by {scorer}: the two sides' scores come from different scorers")
        click.echo(f"  significance: {pair.results_dir / 'significance.json'}")
        if not no_report:
            click.echo(f"  report: {pair.report_html}")
