"""``python -m producer report`` (alias ``python -m scoring.report``): one trial's report.md, report.html,
items.html and figures, in the sibling ``reports/`` folder (CONTRACT section 9)."""

from __future__ import annotations

from pathlib import Path

import click

from producer.cli.command import command
from producer.cli.common import config_path_option
from producer.host.console import UserError, make_console_safe, one_line_errors


@command()
@click.option("--results-dir", required=True, type=click.Path(path_type=Path), help="A trial's results/ folder.")
@click.option("--reports-dir", type=click.Path(path_type=Path), default=None,
              help="Where to write (default: the sibling reports/ folder).")
@click.option("--prepared-dir", type=click.Path(path_type=Path), default=None,
              help="The trial's prepared items, for the questions of the changed items "
                   "(default: the run's own prepared/ folder).")
@config_path_option("none (used for settings only when trial_manifest.json is missing)")
@one_line_errors
def report(results_dir: Path, reports_dir: Path | None, prepared_dir: Path | None, config_path: Path | None) -> None:
    """Render report.md and report.html for one trial."""
    from scoring.report import write_report  # lazy: matplotlib and pandas, --help stays fast

    make_console_safe()
    if not results_dir.is_dir():
        raise UserError(f"results folder not found: {results_dir}")
    cfg = None
    if config_path is not None:
        from config.schema import load_config

        cfg = load_config(config_path, check_files=False)
    out = write_report(results_dir, reports_dir, cfg, prepared_dir=prepared_dir)
    click.echo(f"wrote {out['report_html']}")
    click.echo(f"wrote {out['report_md']}")
    if out["items_html"] is not None:
        click.echo(f"wrote {out['items_html']}")
