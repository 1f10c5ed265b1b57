"""``python -m producer analyse --results-dir R``: re-run score -> stats -> costs -> report on one trial.

Why: the queue analyses each trial when it ends; after a crash, a config change to ``stats`` or
``unsupported``, or new prices, the same analysis is re-run by hand on the exported files.
Defaults follow the run layout (CONTRACT section 9): the config is the run's effective_config.yaml
(two folders above ``results/``), the prepared items are the run's own frozen copy (``<run>/prepared``,
what its workers scored against; ``paths.prepared_dir`` only for a folder without one), the report goes
to the sibling ``reports/``.
"""

from __future__ import annotations

from pathlib import Path

import click

from config.schema import load_config
from producer.cli.command import command
from producer.cli.common import config_path_option
from producer.host.console import UserError, make_console_safe, one_line_errors
from producer.runs.layout import TrialFolder


@command()
@click.option("--results-dir", required=True, type=click.Path(path_type=Path), help="<run>/<trial>/results")
@config_path_option("the run's effective_config.yaml")
@click.option("--prepared-dir", type=click.Path(path_type=Path), default=None,
              help="prepared items (default: the run's own copy, <run>/prepared; else the config's "
                   "paths.prepared_dir)")
@click.option("--reports-dir", type=click.Path(path_type=Path), default=None,
              help="where the report goes (default: <trial>/reports)")
@click.option("--no-report", is_flag=True, help="skip the report")
@one_line_errors
def analyse(results_dir: Path, config_path: Path | None, prepared_dir: Path | None, reports_dir: Path | None,
            no_report: bool) -> None:
    """Score, test and cost one trial's predictions (and write its report)."""
    make_console_safe()
    if not results_dir.is_dir():
        raise UserError(f"results folder not found: {results_dir}")
    from producer.imports.record import refuse_imported_folder

    refuse_imported_folder(TrialFolder.of_results(results_dir.resolve()).run_folder, "analysed again (its scores "
                           "are the import's)")
    if config_path is None:
        config_path = TrialFolder.of_results(results_dir.resolve()).run_folder.effective_config
        if not config_path.is_file():
            raise UserError(f"no --config given and no effective_config.yaml at {config_path}")
    cfg = load_config(config_path, check_files=False)
    from scoring.aggregate import ScoringInputError  # lazy: --help stays fast (pandas)
    from scoring.pipeline import analyse_trial  # lazy: --help stays fast

    trial = TrialFolder.of_results(results_dir.resolve())
    reports = None if no_report else (reports_dir or trial.reports_dir)
    if prepared_dir is None:  # the run's own items, frozen at enqueue (what its workers scored against)
        snapshot = trial.run_folder.prepared_dir
        prepared_dir = snapshot if snapshot.is_dir() else Path(cfg.paths.prepared_dir)
    try:
        out = analyse_trial(results_dir, prepared_dir, cfg, reports)
    except ScoringInputError as exc:
        raise UserError(str(exc)) from None
    for stage, path in out.items():
        click.echo(f"{stage}: {path if path is not None else 'skipped'}")
